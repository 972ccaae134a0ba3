#!/usr/bin/python3
"""Drives a running gridd with Debian's python3-libcloud GoGrid load-balancer driver.

Usage: /usr/bin/python3 libcloud_loadbalancer.py --host 127.0.0.1 --port 8080 --key KEY
       --secret SECRET --vip-port 20080 --member-ports 31001,31002,31003

Walks through what a libcloud user does with load balancers: create one with two members (the
driver picks the first free public IP as the virtual IP), see it come up and answer on its
virtual IP, find it in list_balancers() and with get_balancer() by id and by name, list its
members, attach a third member, detach one, destroy it and see it gone and its virtual IP free
again. A member address that is not the account's is refused with a clear message.

The account must own 127.77.1.2-4 (real IPs), and its first free public IP must be a loopback
address (the script refuses to put a balancer anywhere else). On 127.77.1.2-4, at the given
ports, servers are expected that greet each connection with one line. Prints one line per step;
exits 0 on success, 1 with a message on failure. Only the standard library and libcloud are used.
"""

import ipaddress
import os
import socket
import sys
import time

# Run with -I (isolated), so the script's own directory is not on the path by itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gogrid_steps import Failure, argument_parser, check, connect, ok, run_steps, step  # noqa: E402,F401

from libcloud.compute.drivers.gogrid import GoGridNodeDriver  # noqa: E402
from libcloud.loadbalancer.base import Algorithm, LoadBalancer, Member  # noqa: E402
from libcloud.loadbalancer.drivers.gogrid import GoGridLBDriver  # noqa: E402
from libcloud.loadbalancer.types import LibcloudLBImmutableError, State  # noqa: E402

POLL_TIMEOUT = 30.0
POLL_INTERVAL = 0.25
MEMBER_IPS = ["127.77.1.2", "127.77.1.3"]
ATTACHED_IP = "127.77.1.4"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
FOREIGN_IP = "127.99.0.2"


def make_lb_driver(args):
    return connect(GoGridLBDriver, args)


def make_compute_driver(args):
    return connect(GoGridNodeDriver, args)


def describe_balancer(balancer):
    return "id=%r name=%r state=%r ip=%r port=%r" % (
        balancer.id, balancer.name, balancer.state, balancer.ip, balancer.port)


def describe_balancers(balancers):
    if not balancers:
        return "(no balancers)"
    return "; ".join("[" + describe_balancer(b) + "]" for b in balancers)


def describe_members(members):
    return "[" + ", ".join("%s %s:%s" % (m.id, m.ip, m.port) for m in members) + "]"


def balancer_with_id(balancers, balancer_id):
    for balancer in balancers:
        if balancer.id == balancer_id:
            return balancer
    return None


def free_public_ips(compute):
    return [ip.ip for ip in compute.ex_list_ips(public=True, assigned=False)]


def retry_while_immutable(what, call):
    """Calls call() until it does not raise LibcloudLBImmutableError (the balancer's previous
    change is still being carried out); bounded by POLL_TIMEOUT."""
    deadline = time.monotonic() + POLL_TIMEOUT
    refusals = 0
    while True:
        try:
            result = call()
            if refusals:
                print("  (%s was refused %d time(s) while a change was pending)"
                      % (what, refusals), flush=True)
            return result
        except LibcloudLBImmutableError:
            refusals += 1
            if time.monotonic() >= deadline:
                raise Failure("%s still refused as immutable after %.0f s" % (what, POLL_TIMEOUT))
            time.sleep(POLL_INTERVAL)


def wait_running(driver, balancer_id, what):
    """Polls list_balancers() until the balancer is RUNNING (state On); returns it."""
    deadline = time.monotonic() + POLL_TIMEOUT
    while True:
        found = balancer_with_id(driver.list_balancers(), balancer_id)
        check(found is not None, "balancer %s vanished while waiting %s" % (balancer_id, what))
        if found.state == State.RUNNING:
            return found
        if time.monotonic() >= deadline:
            raise Failure("balancer %s not RUNNING %s after %.0f s: %s"
                          % (balancer_id, what, POLL_TIMEOUT, describe_balancer(found)))
        time.sleep(POLL_INTERVAL)


def greeting(ip, port):
    """Connects to ip:port and returns the first line the server sends (None on failure)."""
    try:
        with socket.create_connection((ip, port), timeout=2) as connection:
            data = b""
            while b"\n" not in data and len(data) < 1024:
                chunk = connection.recv(1024)
                if not chunk:
                    break
                data += chunk
            return data.split(b"\n")[0].decode() if b"\n" in data else None
    except OSError:
        return None


def wait_answer(ip, port, names, what):
    """Connects to the virtual IP until one of `names` greets; returns that name."""
    deadline = time.monotonic() + POLL_TIMEOUT
    while True:
        name = greeting(ip, port)
        if name in names:
            return name
        if time.monotonic() >= deadline:
            raise Failure("%s:%d did not answer %s within %.0f s (last answer %r)"
                          % (ip, port, what, POLL_TIMEOUT, name))
        time.sleep(POLL_INTERVAL)


def check_members(members, expected, what):
    got = sorted((m.ip, int(m.port)) for m in members)
    check(got == sorted(expected),
          "%s: members %s, expected %s" % (what, describe_members(members), sorted(expected)))
    for member in members:
        check(member.id, "%s: member %s:%s has no id" % (what, member.ip, member.port))
        check(isinstance(member.port, int),
              "%s: member port %r is not an integer" % (what, member.port))


def run(args, created):
    driver = make_lb_driver(args)
    compute = make_compute_driver(args)
    check(
        (driver.connection.host, int(driver.connection.port), driver.connection.secure)
        == (args.host, args.port, 0),
        "driver connection is %s:%s secure=%s, expected %s:%s over plain HTTP"
        % (driver.connection.host, driver.connection.port, driver.connection.secure,
           args.host, args.port),
    )

    step("list_protocols() and list_supported_algorithms()")
    check("http" in driver.list_protocols(), "list_protocols() lacks http")
    algorithms = driver.list_supported_algorithms()
    check(Algorithm.ROUND_ROBIN in algorithms and Algorithm.LEAST_CONNECTIONS in algorithms,
          "list_supported_algorithms() is %r" % (algorithms,))
    ok()

    step("list_balancers() on a fresh account")
    initial = driver.list_balancers()
    check(initial == [], "expected no balancers, got %s" % describe_balancers(initial))
    ok()

    step("the first free public IP, which libcloud will take as the virtual IP")
    free_before = free_public_ips(compute)
    check(free_before, "no unassigned public IPs: gridd needs a public IP pool")
    first_free = free_before[0]
    # The balancer will listen on this address: loopback only.
    check(ipaddress.ip_address(first_free) in LOOPBACK,
          "the account's first free public IP is %s, not a loopback address; refusing to create "
          "a load balancer that listens there" % first_free)
    ok(first_free)

    name = "lc-lb-%d" % (int(time.time() * 10) % 100000000)
    ports = args.member_ports
    expected = [(MEMBER_IPS[0], ports[0]), (MEMBER_IPS[1], ports[1])]

    step("create_balancer() with a member address that is not the account's is refused")
    try:
        balancer = driver.create_balancer(
            name=name + "-bad", members=[Member(None, FOREIGN_IP, ports[0])], protocol="http",
            port=args.vip_port, algorithm=Algorithm.ROUND_ROBIN)
    except Exception as error:  # noqa: BLE001 - libcloud raises BaseHTTPError or LibcloudError
        text = str(error)
        check("not one of this account's addresses" in text or "not assigned to your account"
              in text, "unexpected error for a foreign member: %s: %s"
              % (type(error).__name__, text))
        ok("%s: %s" % (type(error).__name__, text))
    else:
        created["id"] = balancer.id
        raise Failure("create_balancer with member %s succeeded: %s"
                      % (FOREIGN_IP, describe_balancer(balancer)))
    check(driver.list_balancers() == [], "a refused create left a balancer behind")

    step("create_balancer(name=%r, members=%s, port=%d, ROUND_ROBIN)"
         % (name, expected, args.vip_port))
    members = [Member(None, ip, port) for ip, port in expected]
    balancer = driver.create_balancer(name=name, members=members, protocol="http",
                                      port=args.vip_port, algorithm=Algorithm.ROUND_ROBIN)
    check(isinstance(balancer, LoadBalancer), "create_balancer returned %r" % (balancer,))
    check(balancer.id, "created balancer has no id: %s" % describe_balancer(balancer))
    created["id"] = balancer.id
    check(balancer.name == name, "created balancer is named %r" % balancer.name)
    check(int(balancer.port) == args.vip_port,
          "created balancer has port %r, expected %d" % (balancer.port, args.vip_port))
    check(balancer.ip == first_free,
          "balancer got virtual IP %s, but libcloud asked for the first free public IP %s"
          % (balancer.ip, first_free))
    vip = balancer.ip
    ok(describe_balancer(balancer))

    step("list_balancers() includes balancer %s" % balancer.id)
    listed = balancer_with_id(driver.list_balancers(), balancer.id)
    check(listed is not None, "balancer %s is not listed" % balancer.id)
    check((listed.name, listed.ip, int(listed.port)) == (name, vip, args.vip_port),
          "listed as %s" % describe_balancer(listed))
    check(vip not in free_public_ips(compute), "virtual IP %s is still listed as free" % vip)
    ok(describe_balancer(listed))

    step("get_balancer(balancer_id=%s)" % balancer.id)
    by_id = driver.get_balancer(balancer_id=balancer.id)
    check((by_id.id, by_id.name, by_id.ip, int(by_id.port))
          == (balancer.id, name, vip, args.vip_port), "got %s" % describe_balancer(by_id))
    ok(describe_balancer(by_id))

    step("get_balancer(ex_balancer_name=%r)" % name)
    by_name = driver.get_balancer(ex_balancer_name=name)
    check(by_name.id == balancer.id, "got %s" % describe_balancer(by_name))
    ok(describe_balancer(by_name))

    step("balancer_list_members()")
    current = driver.balancer_list_members(balancer)
    check_members(current, expected, "after create")
    ok(describe_members(current))

    step("list_balancers() until balancer %s is RUNNING, then %s:%d answers"
         % (balancer.id, vip, args.vip_port))
    running = wait_running(driver, balancer.id, "after create")
    answered = wait_answer(vip, args.vip_port, ("m1", "m2"), "with member m1 or m2")
    ok("%s; greeted by %s" % (describe_balancer(running), answered))

    step("balancer_attach_member(%s:%d)" % (ATTACHED_IP, ports[2]))
    attached = retry_while_immutable(
        "attach", lambda: driver.balancer_attach_member(balancer,
                                                        Member(None, ATTACHED_IP, ports[2])))
    check(isinstance(attached, Member), "attach returned %r" % (attached,))
    check(attached.ip == ATTACHED_IP, "attach returned member %s" % attached.ip)
    check(int(attached.port) == ports[2], "attach returned port %r" % attached.port)
    check(attached.id, "attached member has no id")
    expected.append((ATTACHED_IP, ports[2]))
    current = driver.balancer_list_members(balancer)
    check_members(current, expected, "after attach")
    ok(describe_members(current))

    step("list_balancers() until RUNNING, then the new member answers on %s:%d"
         % (vip, args.vip_port))
    wait_running(driver, balancer.id, "after attach")
    wait_answer(vip, args.vip_port, ("m3",), "with the attached member m3")
    ok()

    detached = [m for m in current if m.ip == MEMBER_IPS[1]][0]
    step("balancer_detach_member(%s %s:%s)" % (detached.id, detached.ip, detached.port))
    result = retry_while_immutable(
        "detach", lambda: driver.balancer_detach_member(balancer, detached))
    check(result is True, "detach returned %r, expected True" % (result,))
    expected.remove((detached.ip, int(detached.port)))
    current = driver.balancer_list_members(balancer)
    check_members(current, expected, "after detach")
    ok(describe_members(current))

    wait_running(driver, balancer.id, "after detach")

    step("destroy_balancer(%s)" % balancer.id)
    result = retry_while_immutable("destroy", lambda: driver.destroy_balancer(balancer))
    check(result is True, "destroy_balancer returned %r, expected True" % (result,))
    created["destroyed"] = True
    ok()

    step("until balancer %s is gone and %s is free again" % (balancer.id, vip))
    deadline = time.monotonic() + POLL_TIMEOUT
    while True:
        balancers = driver.list_balancers()
        gone = balancer_with_id(balancers, balancer.id) is None
        free = free_public_ips(compute)
        if gone and vip in free:
            break
        if time.monotonic() >= deadline:
            raise Failure(
                "timed out after %.0f s: balancer gone=%s, %s free=%s; balancers: %s"
                % (POLL_TIMEOUT, gone, vip, vip in free, describe_balancers(balancers)))
        time.sleep(POLL_INTERVAL)
    ok()


def cleanup(args, created):
    """Best effort: do not leave the test balancer behind after a failure."""
    if created.get("destroyed") or not created.get("id"):
        return
    try:
        driver = make_lb_driver(args)
        balancer = balancer_with_id(driver.list_balancers(), created["id"])
        if balancer is not None:
            retry_while_immutable("cleanup destroy", lambda: driver.destroy_balancer(balancer))
            print("cleanup: destroyed balancer %s" % balancer.id, flush=True)
    except Exception as error:  # noqa: BLE001 - the original failure matters more
        print("cleanup: could not destroy the test balancer: %s" % error, flush=True)


def main():
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--vip-port", required=True, type=int, help="the balancer's port")
    parser.add_argument("--member-ports", required=True,
                        help="ports of the servers on 127.77.1.2, .3 and .4, comma-separated")
    args = parser.parse_args()
    args.member_ports = [int(p) for p in args.member_ports.split(",")]
    if len(args.member_ports) != 3:
        parser.error("--member-ports needs three ports")
    return run_steps(args, run, cleanup, "load-balancer")


if __name__ == "__main__":
    sys.exit(main())
