"""DMARC reports, both ways: aggregate reports (RFC 9990) and failure reports (RFC 9991).

* :mod:`.model`: an aggregate report as plain frozen data, the one shape that
  reports we write and reports we receive share, and :class:`.model.Evaluation`,
  the record of one DMARC evaluation at our door;
* reports out: evaluations are recorded, aggregated per policy domain and
  period, written as XML, compressed and queued to each ``rua`` address that
  agreed to receive them;
* reports in: reports others send about our domains are unpacked (gzip, zip,
  MIME), parsed leniently, stored, and summarised by ``mailwright dmarc sources``.
"""
