#!/usr/bin/env bash
# The codegen tests build clients from the contract as C++ and Go users would, with Debian's toolchains: gRPC for C++
# (libgrpc++-dev, protoc, grpc_cpp_plugin) and Go (golang-go, protoc-gen-go, protoc-gen-go-grpc, and the gRPC,
# protobuf and genproto sources in /usr/share/gocode; github.com/golang/protobuf 1.5, the shim over protobuf's API v2,
# for gRPC's codec: its 1.3 crashes on the messages protoc-gen-go 1.28 makes). Installs what is missing with apt;
# CI runs as root on Debian.
set -euo pipefail
PACKAGES=(libgrpc++-dev protobuf-compiler protobuf-compiler-grpc pkg-config g++
          golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-protobuf-dev
          golang-google-genproto-dev golang-github-golang-protobuf-1-5-dev)
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-codegen: ${missing[*]} missing and apt-get is not here to install them" >&2
    exit 1
fi
echo "ensure-codegen: installing ${missing[*]} for the codegen tests"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
echo "ensure-codegen: grpc++ $(pkg-config --modversion grpc++), $(protoc --version), $(go version)"
