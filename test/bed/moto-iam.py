"""moto's server as a stand-in for IAM, with the two OIDC provider actions moto
5.2.1 lacks (AddClientIDToOpenIDConnectProvider and
RemoveClientIDFromOpenIDConnectProvider) added the way IAM documents them:
both idempotent, an unknown provider is NoSuchEntity. Where moto has them, its
own are used. Arguments are moto_server's."""
import sys

try:
    from moto.server import main
except ImportError as err:
    sys.stderr.write(f"moto_server is not installed ({err}): pip install 'moto[server]'\n")
    sys.exit(3)
from moto.core.responses import EmptyResult
from moto.iam.responses import IamResponse


def add_client_id(self):
    provider = self.backend.get_open_id_connect_provider(self._get_param("OpenIDConnectProviderArn"))
    client_id = self._get_param("ClientID")
    if client_id not in provider.client_id_list:
        provider.client_id_list.append(client_id)
    return EmptyResult()


def remove_client_id(self):
    provider = self.backend.get_open_id_connect_provider(self._get_param("OpenIDConnectProviderArn"))
    client_id = self._get_param("ClientID")
    if client_id in provider.client_id_list:
        provider.client_id_list.remove(client_id)
    return EmptyResult()


for name, action in (
    ("add_client_id_to_open_id_connect_provider", add_client_id),
    ("remove_client_id_from_open_id_connect_provider", remove_client_id),
):
    if not hasattr(IamResponse, name):
        setattr(IamResponse, name, action)

main(sys.argv[1:])
