"""A local upload endpoint for the tests (127.0.0.1, a free port, files under a directory the test made).

PUT and POST store the body at the request's path; GET serves a file, or a directory as an index page (the HTML
autoindex http.server makes), as the aggregation reads the partial results back. ``token`` requires
``Authorization: Bearer <token>`` (else 401); ``fail_first`` answers that many requests 503 first (retries)."""
import http.server
import os
import threading
import urllib.parse


class UploadServer(object):
    def __init__(self, root, token=None, fail_first=0):
        self.root, self.token, self.fail_first = str(root), token, fail_first
        self.requests = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super(Handler, self).__init__(*args, directory=server.root, **kwargs)

            def log_message(self, *args):  # quiet
                pass

            def _refuse(self):
                with server.lock:
                    server.requests.append({"method": self.command, "path": self.path, "authorization": self.headers.get("Authorization"),
                                            "content_type": self.headers.get("Content-Type")})
                    if server.fail_first > 0:
                        server.fail_first -= 1
                        self.send_error(503, "try again")
                        return True
                if server.token and self.headers.get("Authorization") != "Bearer " + server.token:
                    self.send_error(401, "no token")
                    return True
                return False

            def do_GET(self):
                if not self._refuse():
                    super(Handler, self).do_GET()

            def _store(self):
                if self._refuse():
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
                path = os.path.realpath(os.path.join(server.root, rel))
                if not path.startswith(os.path.realpath(server.root) + os.sep):
                    self.send_error(403)
                    return
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as handle:
                    handle.write(body)
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = _store
            do_POST = _store

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
