/** Listen addresses of the health server and `serve`: host:port, :port (every interface), [IPv6]:port. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseListenAddress } from '../../src/server/listen-address.ts';

describe('listen addresses', () => {
  it('parses host:port, :port and [IPv6]:port, and refuses the rest', () => {
    assert.deepEqual(parseListenAddress(':8081'), { port: 8081 });
    assert.deepEqual(parseListenAddress('0.0.0.0:8081'), { host: '0.0.0.0', port: 8081 });
    assert.deepEqual(parseListenAddress('127.0.0.1:8081'), { host: '127.0.0.1', port: 8081 });
    assert.deepEqual(parseListenAddress('[::1]:8081'), { host: '::1', port: 8081 });
    assert.deepEqual(parseListenAddress('localhost:0'), { host: 'localhost', port: 0 });
    for (const bad of ['8081', '::1:8081', '[::1]', 'a b:1', ':65536', ':', 'host:', '[x]:1']) {
      assert.equal(parseListenAddress(bad), undefined, `${JSON.stringify(bad)} should be refused`);
    }
  });
});
