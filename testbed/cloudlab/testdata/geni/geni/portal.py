"""Stub of geni.portal: parameters and the request context."""

import sys

from geni.rspec import pg


class ParameterType:
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    IMAGE = "image"
    NODETYPE = "nodetype"
    BANDWIDTH = "bandwidth"
    LATENCY = "latency"
    SIZE = "size"


class ParameterError(Exception):
    def __init__(self, msg, params):
        Exception.__init__(self, msg)
        self.params = params


class _Params:
    pass


class Context:
    def __init__(self):
        self._defs = {}
        self._errors = []
        self._rspec = None

    def defineParameter(self, name, description, typ, defaultValue,
                        legalValues=None, longDescription=None, **kwargs):
        if name in self._defs:
            raise ValueError("parameter %s defined twice" % name)
        if legalValues is not None:
            values = [v[0] if isinstance(v, tuple) else v for v in legalValues]
            if defaultValue not in values:
                raise ValueError("default %r of %s not among its legal values" % (defaultValue, name))
        self._defs[name] = (description, typ, defaultValue, legalValues)

    def bindParameters(self):
        p = _Params()
        for name, (_, _, default, _) in self._defs.items():
            setattr(p, name, default)
        return p

    def reportError(self, err):
        self._errors.append(err)

    def verifyParameters(self):
        if self._errors:
            for e in self._errors:
                sys.stderr.write("parameter error: %s\n" % e)
            sys.exit(1)

    def makeRequestRSpec(self):
        self._rspec = pg.Request()
        return self._rspec

    def printRequestRSpec(self, rspec=None):
        sys.stdout.write((rspec or self._rspec).toXMLString())


context = Context
