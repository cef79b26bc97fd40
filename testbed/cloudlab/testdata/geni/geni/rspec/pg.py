"""Stub of geni.rspec.pg: nodes, interfaces, links and the request."""


class IPv4Address:
    def __init__(self, address, netmask):
        self.address = address
        self.netmask = netmask


class Interface:
    def __init__(self, node, name):
        self.node = node
        self.client_id = "%s:%s" % (node.client_id, name)
        self.addresses = []

    def addAddress(self, addr):
        self.addresses.append(addr)


class Node:
    def __init__(self, client_id, exclusive=True):
        self.client_id = client_id
        self.exclusive = exclusive
        self.hardware_type = None
        self.disk_image = None
        self.interfaces = []

    def addInterface(self, name=None):
        iface = Interface(self, name or "if%d" % len(self.interfaces))
        self.interfaces.append(iface)
        return iface


class RawPC(Node):
    pass


class Link:
    def __init__(self, client_id):
        self.client_id = client_id
        self.bandwidth = None
        self.best_effort = True
        self.link_multiplexing = True
        self.interfaces = []

    def addInterface(self, iface):
        self.interfaces.append(iface)


class Request:
    def __init__(self):
        self.resources = []

    def _add(self, r):
        self.resources.append(r)
        return r

    def RawPC(self, name):
        return self._add(RawPC(name))

    def Link(self, name, members=None):
        return self._add(Link(name))

    def toXMLString(self):
        out = ['<rspec type="request">']
        for r in self.resources:
            if isinstance(r, Node):
                out.append('  <node client_id="%s" exclusive="%s">' % (r.client_id, str(r.exclusive).lower()))
                out.append('    <sliver_type name="raw-pc"><disk_image name="%s"/></sliver_type>' % r.disk_image)
                out.append('    <hardware_type name="%s"/>' % r.hardware_type)
                for i in r.interfaces:
                    out.append('    <interface client_id="%s">' % i.client_id)
                    for a in i.addresses:
                        out.append('      <ip address="%s" netmask="%s" type="ipv4"/>' % (a.address, a.netmask))
                    out.append('    </interface>')
                out.append('  </node>')
            else:
                out.append('  <link client_id="%s">' % r.client_id)
                for i in r.interfaces:
                    out.append('    <interface_ref client_id="%s"/>' % i.client_id)
                out.append('    <property capacity="%s"/>' % r.bandwidth)
                if not r.best_effort:
                    out.append('    <best_effort enabled="false"/>')
                if not r.link_multiplexing:
                    out.append('    <link_multiplexing enabled="false"/>')
                out.append('  </link>')
        out.append('</rspec>')
        return "\n".join(out) + "\n"
