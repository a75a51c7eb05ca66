"""Generate the protobuf/gRPC modules for proto/skiplock.proto.

The generated code is committed; `python -m skiplock.proto.codegen` rewrites it and
tests/unit/test_sql_and_layout.py fails when it is stale.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "skiplock.proto"
OUTPUTS = ("skiplock_pb2.py", "skiplock_pb2.pyi", "skiplock_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc

    argv = [
        "protoc",
        f"-I{HERE}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(HERE / PROTO),
    ]
    if protoc.main(argv) != 0:
        raise RuntimeError("protoc failed")
    grpc_file = out_dir / "skiplock_pb2_grpc.py"
    # protoc writes an absolute import; the module lives inside skiplock.proto.
    text = re.sub(r"^import skiplock_pb2 as", "from . import skiplock_pb2 as", grpc_file.read_text(),
                  flags=re.M)
    grpc_file.write_text(text)


def generated_texts() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        return {name: (Path(tmp) / name).read_text() for name in OUTPUTS}


def main() -> int:
    for name, text in generated_texts().items():
        (HERE / name).write_text(text)
    print(f"wrote {', '.join(OUTPUTS)} in {HERE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
