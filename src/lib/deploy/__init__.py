"""Deployment: ONNX export of CenterNet networks and the runtimes (ONNX Runtime, OpenVINO) that run them."""
