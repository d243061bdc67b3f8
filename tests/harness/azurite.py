"""Azurite, Microsoft's Azure Storage emulator (npm package ``azurite``,
installed by scripts/deps.sh into .deps/node), as a test server: its Blob
service on 127.0.0.1 and a free port, in memory, telemetry off. It checks
Shared Key signatures and SAS tokens like the real service.

    with Azurite() as az:
        az.create_container("pm-test")
        az.put("pm-test", "a/b.bin", b"...")
        env = az.env()              # AZURE_STORAGE_CONNECTION_STRING
        sas = az.sas("pm-test")     # a read+list container SAS token

The account is Azurite's well-known development account. The server is a
separate process group; stop() ends it. Data is seeded with the Azure SDK
for Python (azure-storage-blob).
"""

import datetime
import os
import shutil

from .util import ServerProcess, free_port, repo_root

ACCOUNT = "devstoreaccount1"
KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
       "K1SZFPTOtr/KBHBeksoGMGw==")


def azurite_program():
    local = os.path.join(repo_root(), ".deps", "node", "node_modules", ".bin",
                         "azurite-blob")
    if os.access(local, os.X_OK):
        return local
    found = shutil.which("azurite-blob")
    if not found:
        raise FileNotFoundError("azurite-blob not installed: run "
                                "scripts/deps.sh")
    return found


class Azurite(ServerProcess):
    @property
    def endpoint(self):
        """The blob endpoint, path-style: http://127.0.0.1:PORT/ACCOUNT."""
        return "http://127.0.0.1:%d/%s" % (self.port, ACCOUNT)

    def connection_string(self, endpoint=None, key=KEY, sas=None):
        parts = ["DefaultEndpointsProtocol=http", "AccountName=" + ACCOUNT,
                 "BlobEndpoint=" + (endpoint or self.endpoint)]
        if key:
            parts.append("AccountKey=" + key)
        if sas:
            parts.append("SharedAccessSignature=" + sas)
        return ";".join(parts) + ";"

    def env(self, endpoint=None, **extra):
        env = {"AZURE_STORAGE_CONNECTION_STRING":
               self.connection_string(endpoint)}
        env.update(extra)
        return env

    def start(self, timeout=30.0):
        self.port = free_port()
        self._spawn(
            [azurite_program(), "--blobHost", "127.0.0.1", "--blobPort",
             str(self.port), "--inMemoryPersistence",
             "--disableTelemetry", "--skipApiVersionCheck", "--silent"],
            "azurite-", timeout)
        return self

    # ---- content, through the Azure SDK ---------------------------------

    def service(self):
        from azure.storage.blob import BlobServiceClient
        return BlobServiceClient.from_connection_string(
            self.connection_string())

    def create_container(self, name):
        self.service().create_container(name)

    def put(self, container, name, data):
        """Upload (or replace) a blob; returns its ETag as the SDK sees it."""
        client = self.service().get_blob_client(container, name)
        return client.upload_blob(data, overwrite=True)["etag"]

    def put_many(self, container, items):
        client = self.service().get_container_client(container)
        for name, data in items.items():
            client.upload_blob(name, data, overwrite=True)

    def properties(self, container, name):
        return self.service().get_blob_client(container, name) \
            .get_blob_properties()

    def sas(self, container, hours=1, permission="rl"):
        """A container SAS token (read and list), signed with the key."""
        from azure.storage.blob import (ContainerSasPermissions,
                                        generate_container_sas)
        return generate_container_sas(
            ACCOUNT, container, account_key=KEY,
            permission=ContainerSasPermissions.from_string(permission),
            expiry=datetime.datetime.now(datetime.timezone.utc)
            + datetime.timedelta(hours=hours))
