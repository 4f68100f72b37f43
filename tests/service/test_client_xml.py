"""The client reads XML with a parser: QUERY_STATUS INFOs of whole, cut and on-disk VOTables,
and UWS job documents into typed JobStatus objects."""

from proxcompute.client import JobStatus
from proxcompute.client._xml import parse_job, query_statuses, votable_error

VOT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">'
    b'<INFO name="QUERY_STATUS" value="OK"/><TABLE><FIELD name="id" datatype="long"/><DATA><TABLEDATA>'
    + b"".join(b"<TR><TD>%d</TD></TR>" % i for i in range(2000))
    + b'</TABLEDATA></DATA></TABLE><INFO name="QUERY_STATUS" value="OVERFLOW"><![CDATA[cut <at> 2000]]></INFO>'
    b"</RESOURCE></VOTABLE>"
)


def test_statuses_of_a_whole_a_cut_and_a_stored_document(tmp_path):
    assert query_statuses(VOT) == [("OK", ""), ("OVERFLOW", "cut <at> 2000")]
    assert query_statuses(VOT[:5000]) == [("OK", "")]  # a streamed head: what came before the cut
    path = tmp_path / "r.vot"
    path.write_bytes(VOT)
    assert query_statuses(path) == [("OK", ""), ("OVERFLOW", "cut <at> 2000")]
    assert query_statuses(b"not xml at all") == []


def test_error_documents():
    doc = (b'<VOTABLE xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">'
           b'<INFO name="QUERY_STATUS" value="ERROR">unknown column &apos;foo&apos; &amp; more</INFO>'
           b"</RESOURCE></VOTABLE>")  # fmt: skip
    assert votable_error(doc) == "unknown column 'foo' & more"
    assert votable_error(VOT) is None


def test_job_document_to_typed_status():
    doc = b"""<uws:job xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" xmlns:xlink="http://www.w3.org/1999/xlink">
      <uws:jobId>abc</uws:jobId><uws:phase>executing</uws:phase>
      <uws:creationTime>2026-01-02T03:04:05Z</uws:creationTime><uws:executionDuration>600</uws:executionDuration>
      <uws:parameters><uws:parameter id="QUERY">SELECT 1 &lt; 2</uws:parameter></uws:parameters>
      <uws:jobInfo><progress done="3" total="12"/><rows overflow="true">100</rows><queue>short</queue></uws:jobInfo>
    </uws:job>"""
    status = JobStatus(parse_job(doc))
    assert status.job_id == "abc" and status.phase == "EXECUTING" and not status.is_final
    assert status.progress == (3, 12) and status.rows == 100 and status.overflow is True
    assert status.queue == "short" and status.execution_duration == 600
    assert status.parameters == {"QUERY": "SELECT 1 < 2"}
    assert status.created.isoformat() == "2026-01-02T03:04:05+00:00"
    assert status["phase"] == "EXECUTING"  # still a dict
