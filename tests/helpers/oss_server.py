"""A small Aliyun-OSS-compatible HTTP server for tests, one that checks signatures.

There is no OSS emulator to install, and OSS clients (opendal's ``oss`` service, oss2)
always address buckets virtual-host style (``bucket.endpoint-host``), which cannot point at
127.0.0.1. So this server is used as an HTTP proxy: clients get an unresolvable endpoint
such as ``http://oss-test.example.invalid`` and ``HTTP_PROXY=http://127.0.0.1:<port>``, and
requests arrive in absolute form (``PUT http://rec.oss-test.example.invalid/live/a.m4s``).

Every request must carry a valid OSS V1 signature (``Authorization: OSS <id>:<signature>``,
base64 HMAC-SHA1 over VERB, Content-MD5, Content-Type, Date, the canonicalized ``x-oss-*``
headers and the canonicalized resource ``/bucket/key`` with its sub-resources); a bad one
is answered 403 ``SignatureDoesNotMatch`` like real OSS does. Supported: PutObject,
GetObject (with Range), HeadObject, DeleteObject, ListObjects (v1 and v2).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

# Query parameters that OSS V1 signs as part of the resource (the documented sub-resources).
SUBRESOURCES = frozenset({
    "acl", "append", "bucketInfo", "cname", "comp", "continuation-token", "cors", "delete",
    "endTime", "img", "lifecycle", "live", "location", "logging", "objectMeta", "partNumber",
    "position", "qos", "referer", "replication", "replicationLocation", "replicationProgress",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires", "restore",
    "security-token", "startTime", "stat", "status", "style", "styleName", "symlink",
    "tagging", "uploadId", "uploads", "versionId", "versioning", "versions", "vod", "website",
    "x-oss-process",
})

MAX_CLOCK_SKEW_S = 15 * 60


def string_to_sign(method: str, headers: dict[str, str], bucket: str, key: str,
                   query: list[tuple[str, str]]) -> str:
    """The OSS V1 string to sign; ``headers`` keys are lower-case."""
    oss_headers = sorted((k, v.strip()) for k, v in headers.items() if k.startswith("x-oss-"))
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in oss_headers)
    subs = sorted((k, v) for k, v in query if k in SUBRESOURCES)
    resource = f"/{bucket}/{key}"
    if subs:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)
    return "\n".join([method, headers.get("content-md5", ""), headers.get("content-type", ""),
                      headers.get("date", ""), canonical_headers + resource])


def sign(secret: str, to_sign: str) -> str:
    digest = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    modified: float

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.data).hexdigest().upper() + '"'


@dataclass
class Logged:
    method: str
    host: str
    path: str
    auth_scheme: str
    status: int


@dataclass
class OssServer:
    """Start with ``start()``; ``proxy_url`` is what HTTP_PROXY should be."""

    credentials: dict[str, str]
    """access key id -> access key secret."""
    buckets: set[str]
    security_tokens: dict[str, str] = field(default_factory=dict)
    """access key id -> STS token that requests with that id must carry."""
    objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    log: list[Logged] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, port: int = 0) -> str:
        server = self

        class Handler(_Handler):
            oss = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self.proxy_url

    @property
    def proxy_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


class OssError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    oss: OssServer

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        host = (url.hostname or self.headers.get("Host", "")).split(":")[0]
        bucket = host.split(".", 1)[0]
        key = unquote(url.path.lstrip("/"))
        query = parse_qsl(url.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        auth = self.headers.get("Authorization", "")
        try:
            self._authenticate(bucket, key, query, body)
            status, headers, payload = self._dispatch(bucket, key, dict(query), body)
        except OssError as e:
            status, headers = e.status, {"Content-Type": "application/xml"}
            payload = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{e.code}</Code>"
                       f"<Message>{escape(e.message)}</Message><RequestId>test</RequestId>"
                       f"<HostId>{escape(host)}</HostId></Error>").encode()
        with self.oss._lock:
            self.oss.log.append(Logged(self.command, host, url.path, auth.split(" ")[0], status))
        self.send_response(status)
        headers.setdefault("x-oss-request-id", "test")
        # HEAD states the object's length without sending it.
        length = headers.pop("Content-Length", str(len(payload)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _authenticate(self, bucket: str, key: str, query: list[tuple[str, str]],
                      body: bytes) -> None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("OSS ") or ":" not in auth:
            raise OssError(403, "AccessDenied", "OSS V1 Authorization header required")
        key_id, _, signature = auth[4:].partition(":")
        secret = self.oss.credentials.get(key_id)
        if secret is None:
            raise OssError(403, "InvalidAccessKeyId", "The OSS Access Key Id does not exist.")
        headers = {k.lower(): v for k, v in self.headers.items()}
        date = headers.get("date", "")
        parsed = email.utils.parsedate_to_datetime(date) if date else None
        if parsed is None or abs(parsed.timestamp() - time.time()) > MAX_CLOCK_SKEW_S:
            raise OssError(403, "RequestTimeTooSkewed", f"bad or skewed Date header {date!r}")
        expected = sign(secret, string_to_sign(self.command, headers, bucket, key, query))
        if not hmac.compare_digest(expected, signature):
            raise OssError(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature "
                           "you provided. Check your key and signing method.")
        token = self.oss.security_tokens.get(key_id)
        if token is not None and headers.get("x-oss-security-token") != token:
            raise OssError(403, "InvalidSecurityToken", "The security token is invalid.")
        md5 = headers.get("content-md5")
        if md5 and base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
            raise OssError(400, "InvalidDigest", "Content-MD5 does not match the body")

    def _dispatch(self, bucket: str, key: str, query: dict[str, str],
                  body: bytes) -> tuple[int, dict[str, str], bytes]:
        if bucket not in self.oss.buckets:
            raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
        if not key:
            if self.command == "GET":
                return self._list(bucket, query)
            raise OssError(501, "NotImplemented", f"{self.command} on a bucket")
        if query.keys() & {"uploads", "uploadId", "append", "acl", "tagging"}:
            raise OssError(501, "NotImplemented", f"sub-resource {sorted(query)}")
        store = self.oss.objects
        if self.command == "PUT":
            obj = StoredObject(body, self.headers.get("Content-Type", "application/octet-stream"),
                               time.time())
            with self.oss._lock:
                store[(bucket, key)] = obj
            return 200, {"ETag": obj.etag}, b""
        if self.command == "DELETE":
            with self.oss._lock:
                store.pop((bucket, key), None)
            return 204, {}, b""
        got = store.get((bucket, key))
        if got is None:
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        headers = {"ETag": got.etag, "Content-Type": got.content_type,
                   "Last-Modified": email.utils.formatdate(got.modified, usegmt=True),
                   "Accept-Ranges": "bytes"}
        if self.command == "HEAD":
            headers["Content-Length"] = str(len(got.data))
            return 200, headers, b""
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            size = len(got.data)
            start = int(first) if first else max(0, size - int(last))
            end = min(int(last), size - 1) if (first and last) else size - 1
            if start >= size:
                raise OssError(416, "InvalidRange", "The requested range cannot be satisfied.")
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return 206, headers, got.data[start:end + 1]
        return 200, headers, got.data

    def _list(self, bucket: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        v2 = query.get("list-type") == "2"
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter", "")
        max_keys = int(query.get("max-keys") or 1000)
        after = query.get("continuation-token") or query.get("start-after") \
            or query.get("marker") or ""
        with self.oss._lock:
            keys = sorted(k for (b, k) in self.oss.objects if b == bucket
                          and k.startswith(prefix) and k > after)
        contents: list[str] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        for k in keys:
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            rest = k[len(prefix):]
            if delimiter and delimiter in rest:
                common = prefix + rest.split(delimiter, 1)[0] + delimiter
                if common not in prefixes:
                    prefixes.append(common)
                last = k
                continue
            obj = self.oss.objects[(bucket, k)]
            modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(obj.modified))
            contents.append(f"<Contents><Key>{escape(k)}</Key><LastModified>{modified}"
                            f"</LastModified><ETag>{escape(obj.etag)}</ETag><Size>"
                            f"{len(obj.data)}</Size><StorageClass>Standard</StorageClass>"
                            "</Contents>")
            last = k
        next_tag = ""
        if truncated:
            next_tag = (f"<NextContinuationToken>{escape(last)}</NextContinuationToken>" if v2
                        else f"<NextMarker>{escape(last)}</NextMarker>")
        xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>"
               f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
               f"<MaxKeys>{max_keys}</MaxKeys><Delimiter>{escape(delimiter)}</Delimiter>"
               f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{next_tag}"
               + (f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>" if v2 else "")
               + "".join(contents)
               + "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>"
                         for p in prefixes)
               + "</ListBucketResult>")
        return 200, {"Content-Type": "application/xml"}, xml.encode()
