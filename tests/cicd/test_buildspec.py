"""coursekit.cicd.build.spec: a buildspec.yml is read as CodeBuild documents it, and every mistake is reported
with the offending key, its line and a fix. No engine needed (lesson 08-ci-cd)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from coursekit.cicd.build import spec as buildspec
from coursekit.cicd.build.artifacts import Picker
from coursekit.cicd.build.spec import BuildspecError, FileSet

HERE = Path(__file__).parents[1] / "fixtures" / "buildspecs"


def test_a_full_buildspec_is_read_as_written():
    spec = buildspec.load(HERE / "full.yml")
    assert spec.version == "0.2" and spec.shell == "bash"
    assert list(spec.phases) == ["install", "pre_build", "build", "post_build"]
    assert spec.phases["install"].on_failure == "ABORT" and spec.phases["build"].on_failure == "CONTINUE"
    assert spec.phases["build"].commands == ("mkdir -p out/bin", 'echo "app: $APP_NAME" > out/bin/app.txt')
    assert spec.phases["build"].finally_ == ("echo build finished",)
    # Values are the text written: 1.10 is not the number 1.1; $HOME is not expanded.
    assert spec.variables == {"APP_NAME": "demo", "VERSION": "1.10", "LITERAL": "$HOME/not-expanded"}
    assert spec.exported_variables == ("IMAGE_TAG",)
    art = spec.artifacts
    assert (art.files, art.base_directory, art.discard_paths, art.exclude_paths, art.name, art.s3_prefix) == \
        (("**/*",), "out", True, ("**/*.tmp",), "app-$CODEBUILD_BUILD_NUMBER.zip", "builds")
    rep = spec.reports["unit-tests"]
    assert (rep.files, rep.base_directory, rep.file_format) == (("**/*.xml",), "reports", "JUNITXML")
    assert spec.warnings == ()
    text = spec.describe()
    assert "$ python --version" in text and "finally $ echo build finished" in text and "install (on-failure ABORT):" in text


def test_a_folder_means_its_buildspec_yml(tmp_path):
    spec = buildspec.load(HERE / "project")
    assert spec.phases["build"].commands == ('echo "built from the default buildspec"',)
    with pytest.raises(BuildspecError) as err:
        buildspec.load(tmp_path)
    assert "buildspec.yml" in err.value.problem and "buildspec.yml" in err.value.fix


def test_yaml_text_is_accepted_too():
    spec = buildspec.load("version: 0.2\nphases:\n  build:\n    commands:\n      - make\n")
    assert spec.phases["build"].commands == ("make",) and spec.source == "<text>"


MALFORMED = [
    # file, the key the error names, its line, words the message or the fix must contain
    ("unknown_version", "version", 1, ["'1.0'", "version: 0.2"]),
    ("version_0_1", "version", 1, ["0.1", "separate shell"]),
    ("unknown_phase", "phases.deploy", 6, ["phases.deploy", "install, pre_build, build, post_build"]),
    ("commands_not_a_list", "phases.build.commands", 4, ["must be a list", "'pytest -q'"]),
    ("bad_on_failure", "phases.build.on-failure", 4, ["ABORT or CONTINUE", "'IGNORE'"]),
    ("lowercase_on_failure", "phases.build.on-failure", 4, ["did you mean CONTINUE"]),
    ("retry_on_failure", "phases.build.on-failure", 4, ["RETRY-3", "not supported"]),
    ("unquoted_colon", "phases.build.commands[1]", 6, ["YAML mapping", "quotes"]),
    ("typo_top_level", "phase", 2, ["did you mean 'phases'"]),
    ("typo_in_phase", "phases.build.comands", 4, ["did you mean 'commands'"]),
    ("reserved_variable", "env.variables.CODEBUILD_BUILD_NUMBER", 4, ["reserved"]),
    ("export_aws_variable", "env.exported-variables[0]", 4, ["AWS_REGION", "cannot be exported"]),
    ("duplicate_phase", "phases.build", 6, ["appears twice"]),
    ("tab_indent", "", 5, ["malformed", "tabs"]),
    ("build_without_commands", "phases.build", 3, ["commands"]),
    ("artifact_outside_source", "artifacts.files[0]", 8, ["outside the source folder"]),
    ("parameter_store", "env.parameter-store", 3, ["not supported", "env.variables"]),
    ("no_phases", "phases", None, ["no phases"]),
    ("bad_discard_paths", "artifacts.discard-paths", 9, ["yes or no", "'sometimes'"]),
]


@pytest.mark.parametrize("name,key,line,words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_buildspec_names_the_key_and_the_line(name, key, line, words):
    path = HERE / "malformed" / f"{name}.yml"
    with pytest.raises(BuildspecError) as err:
        buildspec.load(path)
    e = err.value
    assert (e.key, e.line) == (key, line), str(e)
    text = str(e)
    assert text.startswith(f"{path}, line {line}" if line else f"{path}:"), text
    if key:
        assert key in e.problem
    assert e.fix, "every error says what to do"
    for word in words:
        assert word in text, f"{word!r} not in: {text}"


def test_the_suggested_quoting_is_the_command_that_was_meant():
    with pytest.raises(BuildspecError) as err:
        buildspec.load(HERE / "malformed" / "unquoted_colon.yml")
    suggestion = err.value.fix.split("quotes: ", 1)[1]
    assert yaml.safe_load(suggestion) == ["echo Build started on: $(date)"]


def test_keys_codebuild_knows_but_the_runner_ignores_are_warned_about():
    spec = buildspec.load("version: 0.2\nrun-as: builder\ncache:\n  paths: ['/root/.cache/**/*']\nphases:\n"
                          "  install:\n    runtime-versions:\n      python: 3.11\n  build:\n    commands: [make]\n")
    assert spec.phases["install"].commands == ()
    assert [w.split(" is ignored")[0] for w in spec.warnings] == ["run-as", "cache", "phases.install.runtime-versions"]
    assert "note: cache is ignored" in spec.describe()


def test_other_report_formats_are_refused_with_the_way_to_junit():
    with pytest.raises(BuildspecError) as err:
        buildspec.load("version: 0.2\nphases:\n  build:\n    commands: [make]\nreports:\n  r:\n"
                       "    files: [a.json]\n    file-format: CUCUMBERJSON\n")
    assert err.value.key == "reports.r.file-format" and "JUnit" in err.value.fix


def test_the_artifact_globs_of_aws_s_reference_pick_the_documented_files():
    # The folder tree and the two examples of the base-directory section of the buildspec reference.
    tree = ["my-build1/my-file1.txt", "my-build2/my-file2.txt", "my-build2/my-subdirectory/my-file3.txt"]

    def picked(fs):
        return sorted(n for n in (Picker(fs).name(p) for p in tree) if n)

    assert picked(FileSet(("*/my-file3.txt",), "my-build2")) == ["my-subdirectory/my-file3.txt"]
    assert picked(FileSet(("**/*",), "my-build*", True)) == ["my-file1.txt", "my-file2.txt", "my-file3.txt"]
    assert picked(FileSet(("my-build2/*",))) == ["my-build2/my-file2.txt"]       # one folder deep
    assert picked(FileSet(("my-build2/**/*",))) == ["my-build2/my-file2.txt", "my-build2/my-subdirectory/my-file3.txt"]
    assert picked(FileSet(("my-build2",))) == picked(FileSet(("my-build2/**/*",)))  # a folder named outright
