/**
 * The bed a suite uses. Call at the top of a `describe`: it registers the
 * suite's before/after hooks and returns a getter for the bed.
 *
 *   const bed = useBed();                 the shared bed of the test run (OIDC_BED_STATE),
 *                                         or one of the suite's own when there is none
 *   const bed = useBed({ gcs: false });   a bed of the suite's own, for tests that restart servers
 *   useBed({}, { beforeStop })            beforeStop runs before the bed stops (stop the operator there)
 */
import { after, before } from 'node:test';
import { Bed, type BedOptions } from './bed.ts';

export interface UseBedHooks {
  /** Runs after the suite, before its own bed stops (stop processes that use the bed here). */
  beforeStop?: () => Promise<void>;
}

export function useBed(own?: BedOptions, hooks: UseBedHooks = {}): () => Bed {
  let bed: Bed | undefined;
  let owned = false;
  before(async () => {
    const state = process.env.OIDC_BED_STATE;
    if (!own && state) {
      bed = Bed.attach(state);
    } else {
      bed = await Bed.start(own ?? {});
      owned = true;
    }
  });
  after(async () => {
    try {
      await hooks.beforeStop?.();
    } finally {
      if (owned) await bed?.stop();
    }
  });
  return () => {
    if (!bed) throw new Error('the bed is not started yet: use it inside tests or hooks');
    return bed;
  };
}
