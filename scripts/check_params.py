"""Check params.yaml (or the file given) against the schema: `make repro` runs it before `dvc repro`,
because DVC fails on some bad values (an empty data.root) while loading dvc.yaml, before any stage could
name the key.

    python -m scripts.check_params [params.yaml]
"""
import sys

from zerodiffpp.runtime import paths
from zerodiffpp.runtime.errors import ParamsError
from zerodiffpp.runtime.params import load_params


def main(argv=None) -> None:
    path = (argv if argv is not None else sys.argv[1:]) or [paths.PARAMS]
    try:
        load_params(path[0])
    except ParamsError as e:
        raise SystemExit(f"ERROR: {e}") from None
    print(f"{path[0]}: valid")


if __name__ == "__main__":
    main()
