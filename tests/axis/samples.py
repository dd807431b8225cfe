"""Small hand-written edXML packages (QCVN 102:2016 shape) for the axis tests."""

from __future__ import annotations

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"

VPCP = "000.00.00.G22"
PROVINCE = "000.00.00.H53"
PARTY = "000.00.01.A53"


_REQUIRED = """<edXML:PromulgationInfo>
  <edXML:Place>Hà Nội</edXML:Place>
  <edXML:PromulgationDate>2024/03/01</edXML:PromulgationDate>
</edXML:PromulgationInfo>
<edXML:DocumentType>
  <edXML:Type>1</edXML:Type>
  <edXML:TypeDetail>0</edXML:TypeDetail>
  <edXML:TypeName>Công văn</edXML:TypeName>
</edXML:DocumentType>
<edXML:SignerInfo>
  <edXML:Competence>TL. BỘ TRƯỞNG</edXML:Competence>
  <edXML:Position>Chánh Văn phòng</edXML:Position>
  <edXML:FullName>Nguyễn Văn A</edXML:FullName>
</edXML:SignerInfo>
"""


def edoc(
    from_organ: str = VPCP,
    to: tuple[str, ...] = (PROVINCE,),
    number: str = "7816",
    complete: bool = True,
) -> bytes:
    """A document package; ``complete=False`` leaves out elements the full codec requires."""
    tos = "".join(
        f"""<edXML:To>
  <edXML:OrganId>{o}</edXML:OrganId>
  <edXML:OrganName>Cơ quan {o}</edXML:OrganName>
</edXML:To>
"""
        for o in to
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}" xmlns:edXML="{NS}">
<edXML:edXMLEnvelope>
<edXML:edXMLHeader>
<edXML:MessageHeader>
<edXML:From>
  <edXML:OrganId>{from_organ}</edXML:OrganId>
  <edXML:OrganName>Văn phòng Chính phủ</edXML:OrganName>
</edXML:From>
{tos}<edXML:DocumentId>{from_organ},2024/03/01,{number}/VPCP-TTĐT</edXML:DocumentId>
<edXML:Code>
  <edXML:CodeNumber>{number}</edXML:CodeNumber>
  <edXML:CodeNotation>VPCP-TTĐT</edXML:CodeNotation>
</edXML:Code>
{_REQUIRED if complete else ""}<edXML:Subject>Về việc thử nghiệm trục liên thông</edXML:Subject>
</edXML:MessageHeader>
<edXML:TraceHeaderList>
<edXML:TraceHeader>
  <edXML:OrganId>{from_organ}</edXML:OrganId>
  <edXML:Timestamp>2024/03/01 08:00:00</edXML:Timestamp>
</edXML:TraceHeader>
</edXML:TraceHeaderList>
</edXML:edXMLHeader>
<edXML:edXMLBody/>
</edXML:edXMLEnvelope>
</edXML>""".encode()


def status(
    from_organ: str = PROVINCE,
    response_for: str = VPCP,
    code: str = "01",
    document_id: str = "000.00.00.G22,2024/03/01,7816/VPCP-TTĐT",
) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}" xmlns:edXML="{NS}">
<edXML:edXMLEnvelope>
<edXML:edXMLHeader>
<edXML:MessageHeader>
<edXML:From><edXML:OrganId>{from_organ}</edXML:OrganId></edXML:From>
<edXML:ResponseFor>
  <edXML:OrganId>{response_for}</edXML:OrganId>
  <edXML:Code>7816/VPCP-TTĐT</edXML:Code>
  <edXML:PromulgationDate>2024/03/01</edXML:PromulgationDate>
  <edXML:DocumentId>{document_id}</edXML:DocumentId>
</edXML:ResponseFor>
<edXML:StatusCode>{code}</edXML:StatusCode>
<edXML:Description>Đã đến</edXML:Description>
<edXML:Timestamp>2024/03/01 09:00:00</edXML:Timestamp>
</edXML:MessageHeader>
</edXML:edXMLHeader>
</edXML:edXMLEnvelope>
</edXML>""".encode()
