"""PlatformIO test runner for tinysift firmware tests (test_framework = custom).

Unity comes from PlatformIO's registry, which is out of reach offline; the tests use the tiny
header test/ts_test.h instead, whose output this runner parses:

    TS_TEST:<file>:<line>:<name>:PASS
    TS_TEST:<file>:<line>:<name>:FAIL:<message>
    TS_TESTS_DONE <n> Tests <f> Failures

A test program that ends (or is killed by `timeout`) before TS_TESTS_DONE is an error.
"""

import re

import click
from platformio.public import TestCase, TestCaseSource, TestRunnerBase, TestStatus
from platformio.test.exception import UnitTestError

CASE_RE = re.compile(
    r"^TS_TEST:(?P<file>.+?):(?P<line>\d+):(?P<name>[A-Za-z_][A-Za-z0-9_]*):"
    r"(?P<status>PASS|FAIL|SKIP)(?::(?P<message>.*))?$"
)
DONE_RE = re.compile(r"^TS_TESTS_DONE (?P<tests>\d+) Tests (?P<failures>\d+) Failures")
STATUS = {"PASS": TestStatus.PASSED, "FAIL": TestStatus.FAILED, "SKIP": TestStatus.SKIPPED}


class CustomTestRunner(TestRunnerBase):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._done = False
        self._failures = 0

    def on_testing_line_output(self, line):
        text = line.rstrip("\r\n")
        case = CASE_RE.match(text)
        done = DONE_RE.match(text)
        if self.options.verbose or not (case or done):
            click.echo(line, nl=False)
        if case:
            status = STATUS[case.group("status")]
            self.test_suite.add_case(
                TestCase(
                    name=case.group("name"),
                    status=status,
                    message=case.group("message"),
                    stdout=text,
                    source=TestCaseSource(case.group("file"), int(case.group("line"))),
                )
            )
            if status == TestStatus.FAILED:
                click.secho(f"{case.group('name')}: {case.group('message')}", fg="red")
        elif done:
            self._done = True
            self._failures = int(done.group("failures"))
            self.test_suite.on_finish()

    def stage_testing(self):
        try:
            result = super().stage_testing()
        except UnitTestError as exc:
            # A test program exits 1 when a test failed; those failures are already recorded.
            if self._done and self._failures > 0:
                return None
            # PlatformIO words any non-zero status as a signal ("status 1" -> "SIGHUP").
            raise UnitTestError(
                f"{exc} -- PlatformIO names the exit status N as signal N: 1 = a failed test or a "
                "sanitizer report, 3 = CPU fault (QEMU), 6 = abort/assert, 124 = `timeout` "
                "killed it"
            ) from exc
        if not self.options.without_testing and not self._done:
            raise UnitTestError(
                "the test program ended without 'TS_TESTS_DONE' (crash, timeout or no "
                "TS_TEST_END()); see its output above"
            )
        return result
