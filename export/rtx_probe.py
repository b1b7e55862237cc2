"""Plugin-contract probe: what would a TensorRT plugin creator receive for our lictrt nodes?

``python -m export.rtx_probe GRAPH.onnx`` registers one Python ``IPluginCreatorV3One`` per lictrt op (name,
namespace, version and field names from ``export/op_contracts.py``) with TensorRT-RTX's plugin registry,
parses the graph, records every ``create_plugin`` call (plugin name, fields with their PluginFieldType and
values) and then raises inside ``create_plugin`` so the parse ends with a clean error instead of building.
Prints one JSON object.  Runs in its own process (tests call it with subprocess): a registry cannot be undone.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from export.op_contracts import OPS, PLUGIN_NAMESPACE, PLUGIN_VERSION


def probe(path: str) -> dict:
    import tensorrt_rtx as trt

    calls: list[dict] = []
    type_names = {
        getattr(trt.PluginFieldType, n): n
        for n in ("INT32", "FLOAT32", "CHAR", "INT64", "FLOAT16", "INT8", "FLOAT64", "INT16", "DIMS", "UNKNOWN")
        if hasattr(trt.PluginFieldType, n)
    }

    class Creator(trt.IPluginCreatorV3One):
        def __init__(self, op):
            trt.IPluginCreatorV3One.__init__(self)
            self.name, self.plugin_namespace, self.plugin_version = op.name, PLUGIN_NAMESPACE, PLUGIN_VERSION
            kinds = {"INT": (np.int32, trt.PluginFieldType.INT32), "FLOAT": (np.float32, trt.PluginFieldType.FLOAT32)}
            self.field_names = trt.PluginFieldCollection(
                [
                    trt.PluginField(f.name, np.array([f.default], dtype=kinds[f.onnx_type][0]), kinds[f.onnx_type][1])
                    for f in op.fields
                ]
            )

        def create_plugin(self, name, fc, phase):
            fields = []
            for f in fc:
                fields.append(
                    {
                        "name": f.name,
                        "type": type_names.get(f.type, str(f.type)),
                        "data": np.asarray(f.data).reshape(-1).tolist(),
                    }
                )
            calls.append(
                {
                    "creator": self.name,
                    "namespace": self.plugin_namespace,
                    "version": self.plugin_version,
                    "layer": name,
                    "fields": fields,
                }
            )
            raise RuntimeError("lictrt contract probe: stop here")

    creators = [Creator(op) for op in OPS.values()]
    reg = trt.get_plugin_registry()
    for c in creators:
        reg.register_creator(c, PLUGIN_NAMESPACE)
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(path)
    errors = [str(parser.get_error(i)).splitlines()[0] for i in range(parser.num_errors)]
    return {"parse_ok": bool(ok), "errors": errors, "calls": calls}


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1])))
