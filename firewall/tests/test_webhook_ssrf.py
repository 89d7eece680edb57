"""Webhook URLs cannot reach our own network (SSRF): refused when the policy is saved (API 400, page form error) and
again at every delivery, after resolving the name, connecting only to the addresses that were checked. Real HTTP and
TLS servers on loopback; DNS answers come from a stand-in for `socket.getaddrinfo` for names under `.test` (every
other name goes to the real resolver)."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from firewall import selectors, services, webhooks
from firewall.models import TenantPolicy
from firewall.net import parse_ip
from firewall.tests.test_api import POLICY, assert_error
from firewall.tests.test_views import policy_data, signed_in
from firewall.tests.test_webhooks import SECRET, make_evaluation, make_policy

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:8000/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://0x7f.1/hook",  # hex and a short form
    "http://0x7f000001/hook",
    "http://0177.0.0.1/hook",  # octal
    "http://127.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
    "http://[::ffff:a00:1]/hook",  # 10.0.0.1, mapped
    "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
    "http://[2002:c0a8:101::1]/hook",  # 6to4 of 192.168.1.1
    "http://0.0.0.0/hook",
    "http://0/hook",
    "http://[::]/hook",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata, link-local
    "http://[fe80::1]/hook",
    "http://10.1.2.3/hook",
    "http://172.16.5.4/hook",
    "http://192.168.0.10/hook",
    "http://100.64.0.1/hook",  # shared address space (CGNAT)
    "http://[fc00::1]/hook",
    "http://224.0.0.1/hook",  # multicast
    "http://[ff02::1]/hook",
    "http://240.0.0.1/hook",  # reserved
    "http://255.255.255.255/hook",
    "http://192.0.2.1/hook",  # documentation
    "http://localhost:8000/hook",
    "http://LocalHost./hook",
    "http://api.localhost/hook",
    "https://user:password@hooks.example.com/hook",  # credentials
    "https://token@hooks.example.com/hook",
    "ftp://hooks.example.com/hook",
    "gopher://hooks.example.com:70/_evil",
    "file:///etc/passwd",
    "hooks.example.com/hook",
    "http://hooks.example.com:99999/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_a_non_public_or_malformed_url_is_refused_without_dns(url: str) -> None:
    reasons = r"only public addresses can be called|user name or password|http:// or https://|cannot be parsed"
    with pytest.raises(ValueError, match=reasons):
        webhooks.validate_webhook_url(url)


@pytest.mark.parametrize(
    ("host", "address"),
    [("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("10.258", "10.0.1.2")],
)
def test_legacy_ipv4_spellings_are_read_as_the_c_resolver_reads_them(host: str, address: str) -> None:
    assert str(parse_ip(host)) == address
    assert socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)[0][4][0] == address


def test_the_reason_names_the_kind_of_address() -> None:
    with pytest.raises(ValueError, match=r"2130706433 \(127\.0\.0\.1\) is a loopback address"):
        webhooks.validate_webhook_url("http://2130706433/")
    with pytest.raises(ValueError, match="link-local"):
        webhooks.validate_webhook_url("http://169.254.169.254/")
    with pytest.raises(ValueError, match="user name or password"):
        webhooks.validate_webhook_url("https://a:b@hooks.example.com/")


@pytest.mark.parametrize(
    "url", ["https://93.184.216.34/hook", "http://[2606:4700::1111]:8080/hook", "https://8.8.8.8/", "https://x.test/"]
)
def test_public_addresses_and_names_pass(url: str) -> None:
    webhooks.validate_webhook_url(url, resolve=True)  # x.test does not resolve: checked again at delivery


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/x", "http://10.0.0.2/"])
def test_the_opt_in_setting_allows_our_own_network_but_not_other_schemes_or_credentials(
    settings: Any, url: str
) -> None:
    settings.FIREWALL_WEBHOOK_ALLOW_PRIVATE = True
    webhooks.validate_webhook_url(url)
    with pytest.raises(ValueError, match="http:// or https://"):
        webhooks.validate_webhook_url(url.replace("http://", "ftp://"))
    with pytest.raises(ValueError, match="user name or password"):
        webhooks.validate_webhook_url(url.replace("http://", "http://u:p@"))


# --- DNS --------------------------------------------------------------------------------------------------------------


class FakeDNS:
    """Answers for names ending in `.test`, in turn (the last answer repeats); every other name is resolved for real."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.calls: list[str] = []

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not name.endswith(".test"):
            return self.real(host, port, *args, **kwargs)
        self.calls.append(name)
        queue = self.answers.get(name) or [[]]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        port = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    fake = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def test_a_name_is_refused_when_any_of_its_addresses_is_private(dns: FakeDNS) -> None:
    dns.answers["hooks.mixed.test"] = [["93.184.216.34", "10.0.0.7"]]
    webhooks.validate_webhook_url("https://hooks.mixed.test/x")  # without DNS it is just a name
    with pytest.raises(ValueError, match=r"hooks\.mixed\.test \(10\.0\.0\.7\) is a private address"):
        webhooks.validate_webhook_url("https://hooks.mixed.test/x", resolve=True)
    dns.answers["hooks.v6.test"] = [["2606:4700::1111", "::ffff:127.0.0.1"]]
    with pytest.raises(ValueError, match="loopback"):
        webhooks.validate_webhook_url("https://hooks.v6.test/x", resolve=True)


# --- saving a policy --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://2130706433/x", "http://[::ffff:127.0.0.1]/x", "http://hooks.inside.test/x"])
def test_the_policy_api_refuses_an_internal_webhook_with_a_400_on_the_field(
    api: Any, org_a: Any, alice: Any, dns: FakeDNS, url: str
) -> None:
    dns.answers["hooks.inside.test"] = [["192.168.10.20"]]
    response = api(alice).patch(POLICY, {"webhook_url": url, "webhook_secret": SECRET}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert "only public addresses can be called" in error["fields"]["webhook_url"][0]
    policy = selectors.policy_for(org_a)
    assert (policy.version, policy.webhook_url) == (1, "")


@pytest.mark.django_db
def test_the_policy_api_accepts_a_public_webhook_and_keeps_it_to_its_organization(
    api: Any, org_a: Any, org_b: Any, alice: Any, charlie: Any, dns: FakeDNS
) -> None:
    dns.answers["hooks.public.test"] = [["93.184.216.34"]]
    response = api(alice).patch(
        POLICY, {"webhook_url": "https://hooks.public.test/x", "webhook_secret": SECRET}, format="json"
    )
    assert response.status_code == 200 and response.json()["webhook_url"] == "https://hooks.public.test/x"
    assert api(charlie).get(POLICY).json()["webhook_url"] == ""  # organization B sees its own policy only
    assert selectors.policy_for(org_b).webhook_url == ""


@pytest.mark.django_db
def test_the_policy_page_shows_the_refusal_on_the_webhook_field(org_a: Any, alice: Any) -> None:
    client = signed_in(alice)
    policy = selectors.policy_for(org_a)
    response = client.post(
        reverse("firewall:policy"), policy_data(policy, webhook_url="http://0x7f.1/x", webhook_secret=SECRET)
    )
    assert response.status_code == 400
    [message] = response.context["form"].errors["webhook_url"]
    assert "0x7f.1 (127.0.0.1) is a loopback address" in message
    assert TenantPolicy.objects.get(organization=org_a).version == 1


@pytest.mark.django_db
def test_with_the_opt_in_a_loopback_webhook_can_be_saved(org_a: Any, settings: Any) -> None:
    settings.FIREWALL_WEBHOOK_ALLOW_PRIVATE = True
    policy = services.policy_update(
        organization=org_a, changes={"webhook_url": "http://localhost:9000/x", "webhook_secret": SECRET}, actor=None
    )
    assert policy.webhook_url == "http://localhost:9000/x"


# --- delivery ---------------------------------------------------------------------------------------------------------


class Server:
    """A loopback HTTP server answering the (status, headers) in `answers` in turn, then 200; records every request."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append({"path": self.path, "headers": dict(self.headers.items())})
                status, headers = server.answers.pop(0) if server.answers else (200, {})
                self.send_response(status)
                for name, value in {**headers, "Content-Length": "0"}.items():
                    self.send_header(name, value)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


@pytest.fixture
def quick(settings: Any) -> Any:
    settings.JOBS_BACKEND = "thread"
    settings.JOBS_THREAD_EAGER = True
    settings.FIREWALL_WEBHOOK_ATTEMPTS = 3
    settings.FIREWALL_WEBHOOK_BACKOFF_S = 0.01
    settings.FIREWALL_WEBHOOK_TIMEOUT_S = 2.0
    return settings


@pytest.mark.django_db
def test_a_name_that_rebinds_to_loopback_after_saving_is_refused_at_delivery_and_not_retried(
    org_a: Any, server: Server, dns: FakeDNS, quick: Any, caplog: Any
) -> None:
    dns.answers["hooks.rebind.test"] = [["93.184.216.34"], ["127.0.0.1"]]
    url = f"http://hooks.rebind.test:{server.port}/hook"
    services.policy_update(organization=org_a, changes={"webhook_url": url, "webhook_secret": SECRET}, actor=None)

    outcome = webhooks.webhook_deliver(str(make_evaluation(org_a).pk), organization_id=str(org_a.pk))

    assert outcome == webhooks.FAILED
    assert server.requests == []
    assert dns.calls == ["hooks.rebind.test", "hooks.rebind.test"]  # once at save, once for the only attempt
    [record] = [r for r in caplog.records if r.name == "evalence.firewall.webhooks"]
    assert record.levelno == logging.ERROR
    assert "refused and not retried" in record.getMessage() and "loopback" in record.getMessage()


@pytest.mark.django_db
def test_a_private_literal_saved_under_the_opt_in_is_refused_once_it_is_withdrawn(
    org_a: Any, server: Server, quick: Any
) -> None:
    quick.FIREWALL_WEBHOOK_ALLOW_PRIVATE = True
    policy = make_policy(org_a, f"http://2130706433:{server.port}/hook")
    evaluation = make_evaluation(org_a)
    assert webhooks.webhook_deliver(str(evaluation.pk)) == webhooks.DELIVERED  # 2130706433 is 127.0.0.1
    quick.FIREWALL_WEBHOOK_ALLOW_PRIVATE = False
    assert webhooks.webhook_enqueue(evaluation, policy) is False  # refused before anything is queued
    assert webhooks.webhook_deliver(str(evaluation.pk)) == webhooks.FAILED
    assert len(server.requests) == 1


@pytest.mark.django_db
def test_the_connection_goes_to_the_checked_address_with_the_hosts_name_in_the_host_header(
    org_a: Any, server: Server, dns: FakeDNS, quick: Any
) -> None:
    # The second answer would send a second lookup elsewhere; the delivery must not ask twice.
    quick.FIREWALL_WEBHOOK_ALLOW_PRIVATE = True
    dns.answers["hooks.pinned.test"] = [["127.0.0.1"], []]
    make_policy(org_a, f"http://hooks.pinned.test:{server.port}/in?x=1")

    assert webhooks.webhook_deliver(str(make_evaluation(org_a).pk)) == webhooks.DELIVERED

    assert dns.calls == ["hooks.pinned.test"]
    [request] = server.requests
    assert request["headers"]["Host"] == f"hooks.pinned.test:{server.port}"
    assert request["path"] == "/in?x=1"


@pytest.mark.django_db
def test_when_the_first_checked_address_refuses_the_next_one_is_tried(
    org_a: Any, server: Server, dns: FakeDNS, quick: Any
) -> None:
    quick.FIREWALL_WEBHOOK_ALLOW_PRIVATE = True
    dns.answers["hooks.two.test"] = [["127.0.0.2", "127.0.0.1"]]  # nothing listens on 127.0.0.2
    make_policy(org_a, f"http://hooks.two.test:{server.port}/hook")
    assert webhooks.webhook_deliver(str(make_evaluation(org_a).pk)) == webhooks.DELIVERED
    assert len(server.requests) == 1 and dns.calls == ["hooks.two.test"]


@pytest.mark.django_db
def test_redirects_are_not_followed(org_a: Any, server: Server, quick: Any, caplog: Any) -> None:
    quick.FIREWALL_WEBHOOK_ALLOW_PRIVATE = True
    quick.FIREWALL_WEBHOOK_ATTEMPTS = 2
    elsewhere = Server()
    try:
        location = {"Location": f"http://127.0.0.1:{elsewhere.port}/internal"}
        server.answers = [(302, location), (307, location)]
        make_policy(org_a, f"http://127.0.0.1:{server.port}/hook")
        assert webhooks.webhook_deliver(str(make_evaluation(org_a).pk)) == webhooks.FAILED
        assert elsewhere.requests == [] and len(server.requests) == 2
        assert "HTTP 307: redirects are not followed" in caplog.text
    finally:
        elsewhere.stop()


def _self_signed(tmp_path: Path, name: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.mark.django_db
def test_tls_is_asked_for_the_urls_host_name_and_the_certificate_is_verified(
    org_a: Any, dns: FakeDNS, quick: Any, tmp_path: Path, caplog: Any
) -> None:
    quick.FIREWALL_WEBHOOK_ALLOW_PRIVATE = True
    quick.FIREWALL_WEBHOOK_ATTEMPTS = 1
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path, "hooks.tls.test"))
    names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        conn, _ = listener.accept()
        try:
            context.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass  # the client refuses our self-signed certificate
        finally:
            conn.close()

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    dns.answers["hooks.tls.test"] = [["127.0.0.1"]]
    make_policy(org_a, f"https://hooks.tls.test:{port}/hook")
    try:
        assert webhooks.webhook_deliver(str(make_evaluation(org_a).pk)) == webhooks.FAILED
    finally:
        thread.join(5)
        listener.close()
    assert names == ["hooks.tls.test"]  # SNI carries the name, not the address connected to
    assert "connection error: ConnectError" in caplog.text  # an untrusted certificate is not accepted


@pytest.mark.django_db
def test_a_name_that_does_not_resolve_is_retried_like_a_connection_error(
    org_a: Any, dns: FakeDNS, quick: Any, caplog: Any
) -> None:
    quick.FIREWALL_WEBHOOK_ATTEMPTS = 2
    dns.answers["hooks.gone.test"] = [[]]
    make_policy(org_a, "https://hooks.gone.test/hook")
    assert webhooks.webhook_deliver(str(make_evaluation(org_a).pk)) == webhooks.FAILED
    assert dns.calls == ["hooks.gone.test"] * 2
    assert "webhook failed after 2 attempts: DNS: The host hooks.gone.test does not resolve" in caplog.text
