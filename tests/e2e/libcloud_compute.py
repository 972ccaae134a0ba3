#!/usr/bin/python3
"""Drives a running gridd with Debian's python3-libcloud GoGrid compute driver.

Usage: /usr/bin/python3 libcloud_compute.py --host 127.0.0.1 --port 8080 --key KEY --secret SECRET

Walks through what a libcloud user does: list images, sizes, locations and free IPs; create a
server; wait for it to run and show its password; reboot it; resize it and change its
description; save it as an image, edit the image and build a second server from it; read the
account's bill; destroy the servers and see their IPs freed. Also checks that bad credentials
raise InvalidCredsError. Prints one line per step; exits 0 on success, 1 with a message on failure.
Only the standard library and libcloud are used.
"""

import argparse
import os
import sys
import time

# Run with -I (isolated), so the script's own directory is not on the path by itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gogrid_steps import Failure, argument_parser, check, connect, ok, run_steps, step  # noqa: E402,F401

from libcloud.common.types import InvalidCredsError  # noqa: E402
from libcloud.compute.base import Node  # noqa: E402
from libcloud.compute.drivers.gogrid import GoGridNodeDriver  # noqa: E402
from libcloud.compute.types import NodeState  # noqa: E402

POLL_TIMEOUT = 60.0
POLL_INTERVAL = 0.5
EXPECTED_SIZES = ["512MB", "1GB", "2GB", "4GB", "8GB", "16GB", "24GB"]
EDITED_DESCRIPTION = "edited by libcloud"
IMAGE_DESCRIPTION = "saved and edited by libcloud"


def make_driver(host, port, key, secret):
    return connect(GoGridNodeDriver, argparse.Namespace(host=host, port=port, key=key, secret=secret))


def describe_node(node):
    return "id=%r name=%r state=%r ips=%r ram=%r description=%r password=%s" % (
        node.id,
        node.name,
        node.state,
        node.public_ips,
        node.extra.get("ram"),
        node.extra.get("description"),
        "set" if node.extra.get("password") else "missing",
    )


def describe_nodes(nodes):
    if not nodes:
        return "(no nodes)"
    return "; ".join("[" + describe_node(n) + "]" for n in nodes)


def poll_nodes(driver, what, predicate):
    """Calls list_nodes() until predicate(nodes) returns a true value, which is returned."""
    deadline = time.monotonic() + POLL_TIMEOUT
    while True:
        nodes = driver.list_nodes()
        result = predicate(nodes)
        if result:
            return result
        if time.monotonic() >= deadline:
            raise Failure(
                "timed out after %.0f s waiting for %s; last list_nodes(): %s"
                % (POLL_TIMEOUT, what, describe_nodes(nodes))
            )
        time.sleep(POLL_INTERVAL)


def node_with_ip(nodes, ip):
    for node in nodes:
        if ip in node.public_ips:
            return node
    return None


def node_with_id(nodes, node_id):
    for node in nodes:
        if node.id == node_id:
            return node
    return None


def free_public_ips(driver):
    return [ip.ip for ip in driver.ex_list_ips(public=True, assigned=False)]


def check_invalid_credentials(args):
    for label, key, secret in (
        ("a wrong shared secret", args.key, args.secret + "-wrong"),
        ("an unknown api key", "no-such-api-key", args.secret),
    ):
        step("list_images() with %s raises InvalidCredsError" % label)
        driver = make_driver(args.host, args.port, key, secret)
        try:
            images = driver.list_images()
        except InvalidCredsError:
            ok()
            continue
        except Exception as error:  # noqa: BLE001 - reported as the failure
            raise Failure(
                "expected InvalidCredsError with %s, got %s: %s"
                % (label, type(error).__name__, error)
            )
        raise Failure(
            "expected InvalidCredsError with %s, but the call succeeded (%d images)"
            % (label, len(images))
        )


def run(args, created):
    check_invalid_credentials(args)
    driver = make_driver(args.host, args.port, args.key, args.secret)
    check(
        (driver.connection.host, int(driver.connection.port), driver.connection.secure)
        == (args.host, args.port, 0),
        "driver connection is %s:%s secure=%s, expected %s:%s over plain HTTP"
        % (driver.connection.host, driver.connection.port, driver.connection.secure,
           args.host, args.port),
    )

    step("list_images()")
    images = driver.list_images()
    check(len(images) > 0, "list_images() returned no images")
    for image in images:
        check(image.id, "image without id: %r" % image)
        check(image.name, "image %r has no name (friendlyName)" % image.id)
    image = images[0]
    ok("%d images, using id=%s name=%r" % (len(images), image.id, image.name))

    step("list_sizes()")
    sizes = {size.id: size for size in driver.list_sizes()}
    missing = [s for s in EXPECTED_SIZES if s not in sizes]
    check(not missing, "list_sizes() lacks %s (has %s)" % (missing, sorted(sizes)))
    size_512, size_1g = sizes["512MB"], sizes["1GB"]
    ok(", ".join(EXPECTED_SIZES))

    step("list_locations()")
    locations = driver.list_locations()
    check(len(locations) > 0, "list_locations() returned no locations")
    for location in locations:
        check(location.id, "location without id: %r" % location)
        check(location.name, "location %r has no name" % location.id)
    ok(", ".join("%s=%s" % (loc.id, loc.name) for loc in locations))

    step("ex_list_ips(public=True, assigned=False)")
    ips = driver.ex_list_ips(public=True, assigned=False)
    check(len(ips) > 0, "no unassigned public IPs: gridd needs a public IP pool")
    for ip in ips:
        check(ip.ip, "IP object %r without .ip" % ip.id)
        check(ip.state == "Unassigned",
              "IP %s listed as unassigned has state %r" % (ip.ip, ip.state))
    first_ip = ips[0].ip
    ok("%d free, first %s" % (len(ips), first_ip))

    name = "lc-e2e-%d" % (int(time.time() * 10) % 100000000)
    step("ex_create_node_nowait(name=%r, size=512MB, image=%s)" % (name, image.id))
    node = driver.ex_create_node_nowait(name=name, size=size_512, image=image)
    check(isinstance(node, Node), "ex_create_node_nowait returned %r" % (node,))
    check(node.public_ips and node.public_ips[0],
          "created node has no public IP: %s" % describe_node(node))
    ip = node.public_ips[0]
    created["ip"] = ip
    check(ip == first_ip,
          "node got IP %s, but libcloud asked for the first free public IP %s" % (ip, first_ip))
    check(node.name == name, "created node is named %r, expected %r" % (node.name, name))
    check(node.extra.get("ram") == "512MB",
          "created node has ram %r, expected '512MB'" % node.extra.get("ram"))
    ok(describe_node(node))

    step("list_nodes() until the node with IP %s has an id, runs and has a password" % ip)

    def running_with_password(nodes):
        found = node_with_ip(nodes, ip)
        if (found is not None and found.id and found.state == NodeState.RUNNING
                and found.extra.get("password")):
            return found
        return None

    node = poll_nodes(driver, "server %s to be RUNNING with a password" % ip,
                      running_with_password)
    created["id"] = node.id
    check(node.name == name, "node %s is named %r, expected %r" % (node.id, node.name, name))
    ok(describe_node(node))

    step("reboot_node(%s)" % node.id)
    result = driver.reboot_node(node)
    check(result is True, "reboot_node returned %r, expected True" % (result,))

    def running_again(nodes):
        found = node_with_id(nodes, created["id"])
        return found if found is not None and found.state == NodeState.RUNNING else None

    node = poll_nodes(driver, "server %s to be RUNNING after the reboot" % node.id,
                      running_again)
    ok(describe_node(node))

    step("ex_edit_node(%s, size=1GB, ex_description=%r)" % (node.id, EDITED_DESCRIPTION))
    edited = driver.ex_edit_node(node=node, size=size_1g, ex_description=EDITED_DESCRIPTION)
    check(isinstance(edited, Node), "ex_edit_node returned %r, expected a Node" % (edited,))
    check(edited.id == node.id,
          "ex_edit_node returned node id %r, expected %r" % (edited.id, node.id))
    ok(describe_node(edited))

    step("list_nodes() until server %s shows 1GB, the new description and RUNNING" % node.id)

    def edited_and_running(nodes):
        found = node_with_id(nodes, created["id"])
        if (found is not None and found.extra.get("ram") == "1GB"
                and found.extra.get("description") == EDITED_DESCRIPTION
                and found.state == NodeState.RUNNING):
            return found
        return None

    node = poll_nodes(driver, "server %s to show the edit" % node.id, edited_and_running)
    ok(describe_node(node))

    node = save_and_use_image(driver, node, size_512, locations[0], created)

    step("destroy_node(%s)" % node.id)
    result = driver.destroy_node(node)
    check(result is True, "destroy_node returned %r, expected True" % (result,))
    created["destroyed"] = True
    ok()

    step("until server %s is gone and %s is free again" % (node.id, ip))
    deadline = time.monotonic() + POLL_TIMEOUT
    while True:
        nodes = driver.list_nodes()
        gone = node_with_id(nodes, created["id"]) is None and node_with_ip(nodes, ip) is None
        free = free_public_ips(driver)
        if gone and ip in free:
            break
        if time.monotonic() >= deadline:
            raise Failure(
                "timed out after %.0f s: server gone=%s, %s free=%s; nodes: %s; free IPs: %s"
                % (POLL_TIMEOUT, gone, ip, ip in free, describe_nodes(nodes), free)
            )
        time.sleep(POLL_INTERVAL)
    ok()


def image_state(driver, image_id):
    """The image's state name, read through libcloud's own signed connection."""
    body = driver.connection.request("/api/grid/image/get", params={"id": image_id}).object
    return body["list"][0]["state"]["name"]


def save_and_use_image(driver, node, size, location, created):
    """ex_save_image, wait until Available, ex_edit_image, list_images by location, a server
    from the saved image, and the bill of the running servers. Returns the original node."""
    image_name = "lc-image-%s" % node.id
    step("ex_save_image(%s, %r)" % (node.id, image_name))
    image = driver.ex_save_image(node, image_name)
    check(image.id and image.name == image_name,
          "ex_save_image returned id=%r name=%r, expected name %r" % (image.id, image.name, image_name))
    ok("image id=%s" % image.id)

    step("image %s becomes Available and the server runs again" % image.id)
    deadline = time.monotonic() + POLL_TIMEOUT
    state = image_state(driver, image.id)
    while state != "Available" and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
        state = image_state(driver, image.id)
    check(state == "Available", "image %s is %r after %.0f s" % (image.id, state, POLL_TIMEOUT))
    node = poll_nodes(driver, "server %s to be RUNNING after the save" % node.id,
                      lambda nodes: (lambda n: n if n is not None and n.state == NodeState.RUNNING
                                     else None)(node_with_id(nodes, created["id"])))
    ok()

    step("ex_edit_image(%s, public=False, description, name)" % image.id)
    new_name = image_name + "-v2"
    edited = driver.ex_edit_image(image=image, public=False, ex_description=IMAGE_DESCRIPTION,
                                  name=new_name)
    check(edited.id == image.id and edited.name == new_name,
          "ex_edit_image returned id=%r name=%r, expected %r %r"
          % (edited.id, edited.name, image.id, new_name))
    ok()

    step("list_images(location=%s) shows the edited image" % location.id)
    listed = {i.id: i.name for i in driver.list_images(location=location)}
    check(listed.get(edited.id) == new_name,
          "list_images(location) has %r for image %s" % (listed.get(edited.id), edited.id))
    ok("%d images" % len(listed))

    copy_name = "lc-copy-%s" % node.id
    step("ex_create_node_nowait(name=%r, image=%s) from the saved image" % (copy_name, edited.id))
    copy = driver.ex_create_node_nowait(name=copy_name, size=size, image=edited)
    copy_ip = copy.public_ips[0]

    def copy_running(nodes):
        found = node_with_ip(nodes, copy_ip)
        return found if found is not None and found.id and found.state == NodeState.RUNNING else None

    copy = poll_nodes(driver, "the server from the saved image to run", copy_running)
    ok(describe_node(copy))

    step("myaccount.billing.get counts the RAM of both servers")
    bill = driver.connection.request("/api/myaccount/billing/get").object["list"][0]
    check(bill.get("object") == "billingsummary", "billing answer: %r" % (bill,))
    check(bill.get("memoryInUse") == 1.5,
          "memoryInUse is %r, expected 1.5 (1GB + 512MB deployed)" % bill.get("memoryInUse"))
    ok("memoryInUse=%s memoryAccrued=%s" % (bill["memoryInUse"], bill["memoryAccrued"]))

    step("destroy_node(%s) (the server from the image)" % copy.id)
    check(driver.destroy_node(copy) is True, "destroy_node of the copy failed")
    poll_nodes(driver, "the copy %s to be gone" % copy.id,
               lambda nodes: node_with_ip(nodes, copy_ip) is None)
    ok()
    return node


def cleanup(args, created):
    """Best effort: do not leave the test server behind after a failure."""
    if created.get("destroyed") or not created.get("ip"):
        return
    try:
        driver = make_driver(args.host, args.port, args.key, args.secret)
        node = None
        if created.get("id"):
            node = node_with_id(driver.list_nodes(), created["id"])
        if node is None:
            node = node_with_ip(driver.list_nodes(), created["ip"])
        if node is not None and node.id:
            driver.destroy_node(node)
            print("cleanup: destroyed server %s" % node.id, flush=True)
    except Exception as error:  # noqa: BLE001 - the original failure matters more
        print("cleanup: could not destroy the test server: %s" % error, flush=True)


def main():
    args = argument_parser(__doc__.splitlines()[0]).parse_args()
    return run_steps(args, run, cleanup, "compute")


if __name__ == "__main__":
    sys.exit(main())
