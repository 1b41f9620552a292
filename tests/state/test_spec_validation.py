"""The daemon's own check of a job spec (never trust the client): ids, numbers, text, batch cycles."""

from __future__ import annotations

import pytest

from swarmcompute.errors import InvalidJobSpecError
from swarmcompute.state.job import JobSpec
from swarmcompute.state.table import validate_batch, validate_spec


def spec(job_id: str = "a1", **kw: object) -> JobSpec:
    return JobSpec(id=job_id, argv=("true",), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        spec("é1"),
        spec("ＡＢＣ"),
        spec(".."),
        spec(".hidden"),
        spec("-rf"),
        spec("a/b"),
        spec("x" * 65),
        spec(cpus=float("nan")),
        spec(cpus=float("inf")),
        spec(cpus=1e300),
        spec(timeout_s=float("nan")),
        spec(timeout_s=float("inf")),
        spec(priority=2**64),
        spec(priority=-(2**40)),
        spec(retries=2**64),
        spec(mem_bytes=2**64),
        spec(gpus=-1),
        spec(name="evil\x1b]0;owned\x07"),
        spec(name="two\nlines"),
        spec(name="n" * 300),
        spec(env={"K": "a\0b"}),
        spec(env={"": "v"}),
        spec(env={"A=B": "v"}),
        spec(cwd="/tmp\0x"),
        JobSpec(id="x", argv=("tr\0ue",)),
        JobSpec(id="x", argv=("cat", "caf\udce9.txt")),  # a Latin-1 file name, as Python's argv holds it
        spec(env={"K": "\udcff"}),
        spec(cwd="/srv/caf\udce9"),
        spec(node="n\n1"),
        spec(after=("",)),
        spec(image="bad image!"),  # what no engine pulls is refused at submission, not as a failed attempt
        spec(image="Alpine"),
        spec(image="x:"),
        spec(image="http://registry/x"),
        spec(image="x@sha256:12"),
    ],
)
def test_the_daemon_refuses_what_no_node_could_run(bad: JobSpec) -> None:
    with pytest.raises(InvalidJobSpecError):
        validate_spec(bad)


@pytest.mark.parametrize(
    "good",
    [
        spec("a"),
        spec("Job_1.retry-2"),
        spec("x" * 64),
        spec(cpus=0.0, priority=-5, retries=3, mem_bytes=2**40, gpus=1, timeout_s=0.5),
        spec(name="nightly build — résumé ✓"),
        JobSpec(id="x", argv=("cat", "café.txt"), env={"GREETING": "grüß dich"}, cwd="/srv/café"),
        *(
            spec(image=image)
            for image in (
                "alpine",
                "debian:12-slim",
                "ghcr.io/org/app:v1.2",
                "localhost:5000/team/x:latest",
                "[::1]:5000/img",
                "alpine:3.19@sha256:" + "b" * 64,
                "3f57d9401f8d",  # an image id
            )
        ),
    ],
)
def test_ordinary_specs_pass(good: JobSpec) -> None:
    validate_spec(good)


def test_a_cycle_inside_one_batch_is_refused() -> None:
    with pytest.raises(InvalidJobSpecError, match="cycle.*a, b"):
        validate_batch([spec("a", after=("b",)), spec("b", after_any=("a",))])
    with pytest.raises(InvalidJobSpecError, match="cycle"):
        validate_batch([spec("a", after=("c",)), spec("b", after=("a",)), spec("c", after=("b",)), spec("d")])


def test_one_id_given_to_two_jobs_of_one_batch_is_refused_not_one_of_them_dropped() -> None:
    with pytest.raises(InvalidJobSpecError, match="^job id dup is given to two jobs of one submission: give each"):
        validate_batch([spec("a"), spec("dup"), spec("b"), spec("dup", after=("a",))])


def test_a_dag_inside_one_batch_passes() -> None:
    validate_batch([spec("a"), spec("b", after=("a",)), spec("c", after=("a", "b")), spec("d", after=("outside", "c"))])


def test_text_that_is_not_utf8_is_refused_in_one_line_that_shows_its_bytes() -> None:
    with pytest.raises(InvalidJobSpecError) as refused:
        validate_spec(JobSpec(id="x", argv=("cat", "caf\udce9.txt")))
    assert str(refused.value) == (
        "a command argument b'caf\\xe9.txt' is not valid UTF-8: a job's command, environment and directory"
        " must be UTF-8 text"
    )


def test_an_image_reference_that_is_not_lowercase_says_so() -> None:
    with pytest.raises(
        InvalidJobSpecError, match="^'Alpine' is not an image reference .*: repository names are lowercase$"
    ):
        validate_spec(spec(image="Alpine"))
