"""Joyride bench: two bare-metal nodes on a dedicated 100G link.

Instantiate this profile on CloudLab, then follow docs/CLOUDLAB.md in the
joyride repository: run testbed/cloudlab/setup.sh on both nodes, fill in
testbed/cloudlab.yaml and run `jrbench testbed check testbed/cloudlab.yaml`.

Instructions:
Both nodes run the chosen image. The experiment link joins node0 (client,
198.18.0.1/24) and node1 (server, 198.18.0.2/24) on the 100G ports; the
control network (the node's public hostname) is what SSH uses.
"""

import geni.portal as portal
import geni.rspec.pg as pg

pc = portal.Context()

pc.defineParameter(
    "hwtype", "Hardware type",
    portal.ParameterType.NODETYPE, "c6525-100g",
    [("c6525-100g", "c6525-100g (Utah: AMD EPYC 7402P, ConnectX-5 100G)"),
     ("d6515", "d6515 (Utah: AMD EPYC 7452, ConnectX-5 100G)"),
     ("r7525", "r7525 (Clemson: AMD EPYC 7542, ConnectX-5/6 100G)")],
    longDescription="Both nodes get this type; it must have a 100G port.")
pc.defineParameter(
    "image", "Disk image",
    portal.ParameterType.IMAGE,
    "urn:publicid:IDN+emulab.net+image+emulab-ops//UBUNTU22-64-STD",
    longDescription="setup.sh is written for Ubuntu 22.04.")
pc.defineParameter(
    "bandwidth", "Link bandwidth (kbps)",
    portal.ParameterType.BANDWIDTH, 100000000,
    longDescription="100 Gbps; lower it only for types with slower ports.")

params = pc.bindParameters()
if params.bandwidth <= 0:
    pc.reportError(portal.ParameterError("bandwidth must be positive", ["bandwidth"]))
pc.verifyParameters()

request = pc.makeRequestRSpec()

link = request.Link("link0")
link.bandwidth = params.bandwidth
# A dedicated link: no shared VLAN, no traffic shaping node in the path.
link.best_effort = False
link.link_multiplexing = False

for i in range(2):  # node0: client, node1: server
    node = request.RawPC("node%d" % i)
    node.hardware_type = params.hwtype
    node.disk_image = params.image
    iface = node.addInterface("if%d" % i)
    # RFC 2544 benchmarking addresses, as in testbed/cloudlab.yaml.
    iface.addAddress(pg.IPv4Address("198.18.0.%d" % (i + 1), "255.255.255.0"))
    link.addInterface(iface)

pc.printRequestRSpec(request)
