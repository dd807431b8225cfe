"""Synthetic but realistic edXML scenarios (QCVN 102:2016 flows), written by us.

``SCENARIOS`` maps a fixture name to its model; ``tests/fixtures/edxml/<name>.edxml`` is
``build(model)`` (regenerate with ``python -m tests.edxml.scenarios``).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from pathlib import Path

from gateway.edxml import (
    Attachment,
    Bussiness,
    BussinessDocType,
    BussinessDocumentInfo,
    Code,
    DocumentType,
    EdocMessage,
    Organ,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    StatusMessage,
    TraceHeader,
    build,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "edxml"

VPCP = Organ("000.00.00.G22", "Văn phòng Chính phủ", "Thủ tướng Chính phủ",
             "16 Lê Hồng Phong, Ba Đình, Hà Nội", "vpcp@chinhphu.vn", "080.43162", "080.44130",
             "https://vpcp.chinhphu.vn")
HANAM = Organ("000.00.00.H29", "UBND tỉnh Hà Nam", email="ubnd@hanam.gov.vn")
BNV = Organ("000.00.00.G12", "Bộ Nội vụ")
BTTTT = Organ("000.00.00.G14", "Bộ Thông tin và Truyền thông")


def pdf_bytes(label: str, size: int = 6000) -> bytes:
    """A small deterministic PDF-looking file (header, pseudo-random body, EOF marker)."""
    body = bytearray()
    seed = label.encode()
    while len(body) < size:
        seed = hashlib.sha256(seed).digest()
        body += seed
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(body[:size]) + b"\n%%EOF\n"


def _att(cid: str, name: str, label: str, ctype: str = "application/pdf") -> Attachment:
    return Attachment(cid, name, ctype, pdf_bytes(label), f"Tệp {name}")


DOC_ID = "000.00.00.G22,2024/03/15,1234/VPCP-TTĐT"
TRACE0 = TraceHeader("000.00.00.G22", datetime(2024, 3, 15, 9, 30, 0))


def new_document() -> EdocMessage:
    return EdocMessage(
        from_organ=VPCP, to_organs=(HANAM, BNV, BTTTT), document_id=DOC_ID,
        code=Code("1234", "VPCP-TTĐT"),
        promulgation_info=PromulgationInfo("Hà Nội", date(2024, 3, 15)),
        document_type=DocumentType(1, "Công văn", 1),
        subject="V/v triển khai kết nối, liên thông văn bản điện tử qua Trục liên thông",
        content="Văn phòng Chính phủ đề nghị các cơ quan khẩn trương triển khai...",
        signer_info=SignerInfo("Trần Văn Sơn", "KT. BỘ TRƯỞNG, CHỦ NHIỆM", "Phó Chủ nhiệm"),
        due_date=date(2024, 3, 30),
        other_info=OtherInfo(priority=1, sphere_of_promulgation="Toàn quốc",
                             typer_notation="TTĐT", promulgation_amount=3, page_amount=2,
                             direction=False, appendixes=("Phụ lục I: danh sách cơ quan",)),
        steering_type=0,
        to_places=("Như trên;", "VPCP: BTCN, các PCN;", "Lưu: VT, TTĐT (3b)."),
        trace_headers=(TRACE0,),
        bussiness=Bussiness(BussinessDocType.NEW, DOC_ID, "", False,
                            staff_info=StaffInfo("Cục Tin học", "Nguyễn Thị Hoa",
                                                 "hoa@chinhphu.vn", "0912345678")),
        attachments=(_att("6c2f1a4e-1b0e-4a43-9d55-1c5c0e2f8a01", "1234-VPCP-TTDT.pdf", "main"),
                     _att("6c2f1a4e-1b0e-4a43-9d55-1c5c0e2f8a02", "PhuLuc.pdf", "annex")),
    )


def reply() -> EdocMessage:
    return EdocMessage(
        from_organ=HANAM, to_organs=(VPCP,),
        document_id="000.00.00.H29,2024/03/20,567/UBND-VP", code=Code("567", "UBND-VP"),
        promulgation_info=PromulgationInfo("Hà Nam", date(2024, 3, 20)),
        document_type=DocumentType(1, "Công văn", 1),
        subject="V/v báo cáo kết quả kết nối Trục liên thông văn bản",
        signer_info=SignerInfo("Lê Văn Minh", "TM. ỦY BAN NHÂN DÂN", "Chủ tịch"),
        response_for=(ResponseFor("000.00.00.G22", "1234/VPCP-TTĐT", date(2024, 3, 15), DOC_ID),),
        trace_headers=(TraceHeader("000.00.00.H29", datetime(2024, 3, 20, 14, 0, 5)),),
        attachments=(_att("a1", "567-UBND-VP.pdf", "reply"),),
    )


def _business(kind: BussinessDocType, **kw) -> EdocMessage:
    base = new_document()
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__}
    fields["bussiness"] = Bussiness(kind, DOC_ID, **kw)
    fields["trace_headers"] = (TRACE0, TraceHeader(None, datetime(2024, 3, 16, 8, 0, 0)))
    return EdocMessage(**fields)


def revoke() -> EdocMessage:
    return _business(BussinessDocType.REVOKE, bussiness_doc_reason="Ban hành nhầm đối tượng",
                     paper=False, staff_info=StaffInfo("Văn thư", "Phạm Thu", None, "0987654321"))


def update() -> EdocMessage:
    return _business(
        BussinessDocType.UPDATE, bussiness_doc_reason="Bổ sung nơi nhận",
        bussiness_document_info=BussinessDocumentInfo(
            False, True, (Receiver("000.00.00.G12", 1), Receiver("000.00.00.G08", 0))))


def replace() -> EdocMessage:
    return _business(
        BussinessDocType.REPLACE, bussiness_doc_reason="Thay thế do sai sót trích yếu",
        paper=True, replacement_info_list=(ReplacementInfo(
            ("000.00.00.G22,2024/03/01,1100/VPCP-TTĐT",), ("000.00.00.H29", "000.00.00.G12")),))


def status(code: str, description: str = "", sender: Organ = HANAM) -> StatusMessage:
    return StatusMessage(
        from_organ=sender,
        response_for=ResponseFor("000.00.00.G22", "1234/VPCP-TTĐT", date(2024, 3, 15), DOC_ID),
        status_code=StatusCode.coerce(code), description=description,
        timestamp=datetime(2024, 3, 15, 10, 5, 0),
        staff_info=StaffInfo("Văn phòng", "Đỗ Thị Lan", "lan@hanam.gov.vn", "0909000111"))


STATUS_TEXTS = {
    "01": "", "02": "Văn bản không đúng thẩm quyền giải quyết", "03": "Đã vào sổ văn bản đến",
    "04": "Giao Sở TT&TT chủ trì", "05": "", "06": "Đã hoàn thành xử lý",
    "13": "Văn bản phát hành nhầm, đề nghị cho lấy lại", "15": "",
    "16": "Văn bản đã được phân công xử lý",
}


def scenarios() -> dict[str, EdocMessage | StatusMessage]:
    out: dict[str, EdocMessage | StatusMessage] = {
        "edoc_new_several_receivers": new_document(), "edoc_reply": reply(),
        "edoc_revoke": revoke(), "edoc_update": update(), "edoc_replace": replace(),
    }
    for code, text in STATUS_TEXTS.items():
        sender = VPCP if code == "13" else HANAM
        out[f"status_{code}"] = status(code, text, sender)
    return out


def write_fixtures() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, model in scenarios().items():
        (FIXTURES / f"{name}.edxml").write_bytes(build(model))


if __name__ == "__main__":
    write_fixtures()
