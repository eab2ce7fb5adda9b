"""Builds the package: the hand-written helpers in src/, plus the stubs
grpcio-tools generates from the repository's proto/ (libvirt_grpc/v1/*),
written straight into the build directory so nothing generated is ever
committed. LIBVIRT_GRPC_PROTO names another proto/ directory."""

import glob
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        from grpc_tools import protoc

        proto = os.environ.get("LIBVIRT_GRPC_PROTO", os.path.join(HERE, "..", "..", "proto"))
        files = sorted(glob.glob(os.path.join(proto, "libvirt_grpc", "v1", "*.proto")))
        if not files:
            raise SystemExit(f"no .proto files under {proto}/libvirt_grpc/v1")
        include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
        args = [
            "protoc",
            f"-I{proto}",
            f"-I{include}",
            f"--python_out={self.build_lib}",
            f"--pyi_out={self.build_lib}",
            f"--grpc_python_out={self.build_lib}",
            *files,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("grpcio-tools failed on proto/")
        init = os.path.join(self.build_lib, "libvirt_grpc", "v1", "__init__.py")
        with open(init, "w", encoding="utf-8") as f:
            f.write('"""Generated from proto/libvirt_grpc/v1 by grpcio-tools."""\n')


setup(cmdclass={"build_py": BuildWithStubs})
