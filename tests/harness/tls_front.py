"""A TLS front on 127.0.0.1 for a plain HTTP server of the tests (moto, the
HTTP origin): it terminates TLS with a certificate for 127.0.0.1 and
localhost signed by a private certificate authority made for the run, and
forwards the bytes both ways to the upstream port. So an origin can be
reached over https:// and trusted only through a CA bundle (``ca_file``),
as a private S3-compatible store or a TLS-inspecting proxy would be.

``drop_handshakes(n)`` makes it reset the next n connections once the
client's hello has arrived (a handshake cut short, as a load balancer
draining a node gives). ``accepted`` counts connections. A
context manager; the certificates live in a temporary directory."""

import datetime
import ipaddress
import os
import socket
import ssl
import tempfile
import threading


def _make_certificates(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            "pagemesh test CA")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                         critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, content_commitment=False,
              key_encipherment=False, data_encipherment=False,
              key_agreement=False, key_cert_sign=True, crl_sign=True,
              encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(
              ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = {name: os.path.join(directory, name)
             for name in ("ca.pem", "cert.pem", "key.pem")}
    with open(paths["ca.pem"], "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(paths["cert.pem"], "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(paths["key.pem"], "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


def _pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class TLSFront:
    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.accepted = 0
        self._drop = 0
        self._lock = threading.Lock()
        self._sockets = []

    def __enter__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="pm-tls-")
        paths = _make_certificates(self._dir.name)
        self.ca_file = paths["ca.pem"]
        self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ctx.load_cert_chain(paths["cert.pem"], paths["key.pem"])
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.close()
                except OSError:
                    pass
        self._dir.cleanup()

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def drop_handshakes(self, n):
        with self._lock:
            self._drop = n

    def _serve(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                drop = self._drop > 0
                if drop:
                    self._drop -= 1
            if drop:
                threading.Thread(target=self._reset, args=(conn,),
                                 daemon=True).start()
                continue
            threading.Thread(target=self._handle, args=(conn,),
                             daemon=True).start()

    @staticmethod
    def _reset(conn):
        """Take the client's hello, then reset the connection: the
        handshake is cut short (not the connection refused)."""
        conn.settimeout(5)
        try:
            conn.recv(4096)
        except OSError:
            pass
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    def _handle(self, conn):
        try:
            tls = self._ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()  # e.g. a client that does not trust our CA
            return
        try:
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            tls.close()
            return
        with self._lock:
            self._sockets += [tls, up]
        threading.Thread(target=_pump, args=(up, tls), daemon=True).start()
        _pump(tls, up)
