#!/usr/bin/env bash
# The codegen test builds a C++ client from the contract with Debian's gRPC (libgrpc++-dev, protoc and
# grpc_cpp_plugin), as a C++ user would. Installs them with apt when they are missing; CI runs as root on Debian.
set -euo pipefail
PACKAGES=(libgrpc++-dev protobuf-compiler protobuf-compiler-grpc pkg-config g++)
if command -v protoc >/dev/null && command -v grpc_cpp_plugin >/dev/null && pkg-config --exists grpc++ 2>/dev/null \
    && command -v g++ >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-grpc-cpp: Debian's gRPC for C++ is missing and apt-get is not here to install it" >&2
    exit 1
fi
echo "ensure-grpc-cpp: installing ${PACKAGES[*]} for the C++ codegen test"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${PACKAGES[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q "${PACKAGES[@]}" >/dev/null; }
echo "ensure-grpc-cpp: grpc++ $(pkg-config --modversion grpc++), $(protoc --version)"
