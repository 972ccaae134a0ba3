"""What the libcloud end-to-end scripts share: step reporting, a connection pinned to the
daemon on loopback, and the run/cleanup/exit-status harness. Standard library only."""

import argparse
import os
import sys
import traceback

REQUEST_TIMEOUT = 30

# The daemon is on loopback: never go through a proxy from the environment.
for _var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(_var, None)
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "*"


class Failure(Exception):
    """A step did not do what a libcloud user relies on."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def step(text):
    print("step: " + text, flush=True)


def ok(detail=""):
    print("  ok" + (": " + detail if detail else ""), flush=True)


def connect(driver_class, args):
    """A libcloud GoGrid driver talking to the daemon at args.host:args.port: plain HTTP, or
    HTTPS verified against args.ca_file when the script was given --ca-file."""
    ca_file = getattr(args, "ca_file", None)
    if ca_file:
        import libcloud.security

        libcloud.security.VERIFY_SSL_CERT = True
        libcloud.security.CA_CERTS_PATH = ca_file
    driver = driver_class(args.key, args.secret, host=args.host, port=args.port, secure=bool(ca_file))
    connection = driver.connection
    # libcloud 3.4.1 takes host/port/secure from the constructor; pin them anyway so that no
    # default (api.gogrid.com:443) can sneak in.
    connection.host = args.host
    connection.port = int(args.port)
    connection.secure = 1 if ca_file else 0
    connection.timeout = REQUEST_TIMEOUT
    return driver


def argument_parser(description):
    """The arguments every script takes: where the daemon is and the credentials."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--key", required=True, help="API key")
    parser.add_argument("--secret", required=True, help="shared secret")
    parser.add_argument("--ca-file", help="HTTPS, trusting this PEM certificate (default: HTTP)")
    return parser


def run_steps(args, run, cleanup, what):
    """Runs run(args, created); on any failure reports it, calls cleanup(args, created) and
    returns 1; returns 0 when every step passed."""
    created = {}
    try:
        run(args, created)
    except Failure as failure:
        print("FAILED: %s" % failure, flush=True)
        cleanup(args, created)
        return 1
    except Exception:  # noqa: BLE001 - any libcloud error is a failure of the step
        print("FAILED with an exception:", flush=True)
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        cleanup(args, created)
        return 1
    print("all libcloud %s steps passed" % what, flush=True)
    return 0
