"""Run Eclipse Paho's MQTT 3.1.1 interoperability tests (client_test.py)
against one broker and print one line per test, then a summary line.

client_test.py reads its host, port and topics from globals set in its
__main__ block, whose argument parsing collides with unittest's; this
runner sets them and calls unittest itself. Usage:
    python3 paho_client_test.py <paho interoperability dir> <port> <label>
Exit status 0 always: the caller compares the two brokers' results.
"""
import contextlib
import io
import logging
import sys
import unittest

suite_dir, port, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, suite_dir)
import client_test as ct  # noqa: E402

ct.host = "127.0.0.1"
ct.port = port
ct.topics = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
ct.wildtopics = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
ct.nosubscribe_topics = ("test/nosubscribe",)
logging.getLogger().setLevel(logging.CRITICAL)

result = unittest.TestResult()
noise = io.StringIO()  # the suite's own prints; shown only with -v
with contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise):
    unittest.TestLoader().loadTestsFromTestCase(ct.Test).run(result)
if "-v" in sys.argv[4:]:
    print(noise.getvalue())
failed = {t.id().split(".")[-1] for t, _ in result.failures + result.errors}
names = sorted(unittest.TestLoader().getTestCaseNames(ct.Test))
for n in names:
    print("paho %s %s %s" % (label, n, "FAIL" if n in failed else "pass"))
print("paho %s: %d of %d passed" % (label, len(names) - len(failed), len(names)))
