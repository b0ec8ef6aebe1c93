"""Each entity: a valid example in a sentence is found whole, and the same number with a
broken check (or without its keyword, for weak patterns) is not PII."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trustgate_core.pii import ENTITIES, find

# (entity, text holding a valid value, that value, the same text with the check broken)
CASES = [
    (
        "email",
        "write to jane.doe@example.com today",
        "jane.doe@example.com",
        "write to jane..doe@example.com today",
    ),
    (
        "credit_card",
        "card 4111 1111 1111 1111 exp",
        "4111 1111 1111 1111",
        "card 4111 1111 1111 1112 exp",
    ),
    ("credit_card", "amex 378282246310005.", "378282246310005", "amex 378282246310006."),
    (
        "iban",
        "IBAN DE89 3704 0044 0532 0130 00 please",
        "DE89 3704 0044 0532 0130 00",
        "IBAN DE88 3704 0044 0532 0130 00 please",
    ),
    ("iban", "to GB82WEST12345698765432", "GB82WEST12345698765432", "to GB82WEST12345698765433"),
    ("swift_bic", "SWIFT code DEUTDEFF500", "DEUTDEFF500", "SWIFT code DEUTQQFF500"),
    ("icd10", "diagnosis: E11.9 (type 2)", "E11.9", "diagnosis: U11.9 (type 2)"),
    ("us_ssn", "SSN 536-22-1234.", "536-22-1234", "SSN 666-22-1234."),
    ("us_ssn", "my ssn is 536221234", "536221234", "my ssn is 000221234"),
    ("us_passport", "passport no. 912803456", "912803456", "number 912803456"),
    ("us_drivers_license", "driver's license D1234567", "D1234567", "part number D1234567"),
    ("us_medical_record_number", "MRN: 00451234", "00451234", "order: 00451234"),
    ("us_phone", "call (415) 555-2671 now", "(415) 555-2671", "call (415) 155-2671 now"),
    ("uk_nino", "NI number AB 12 34 56 C", "AB 12 34 56 C", "NI number BG 12 34 56 C"),
    ("uk_phone", "ring +44 20 7946 0958", "+44 20 7946 0958", "ring +44 20 7946 09"),
    ("de_tax_id", "Steuer-IdNr 36 574 261 809", "36 574 261 809", "Steuer-IdNr 36 574 261 808"),
    ("fr_nir", "NIR 2 95 10 99 126 111 93", "2 95 10 99 126 111 93", "NIR 2 95 10 99 126 111 94"),
    ("fr_nir", "NIR 2 53 07 2B 073 004 70", "2 53 07 2B 073 004 70", "NIR 2 53 07 2B 073 004 71"),
    ("es_dni", "DNI 54362315K", "54362315K", "DNI 54362315Z"),
    ("es_nie", "NIE X2482300W", "X2482300W", "NIE X2482300A"),
    ("it_tax_code", "CF RCCMNL83S18D969H", "RCCMNL83S18D969H", "CF RCCMNL83S18D969A"),
    ("nl_bsn", "BSN 111222333", "111222333", "BSN 111222334"),
    ("pl_pesel", "PESEL 44051401359", "44051401359", "PESEL 44051401358"),
    ("se_personnummer", "pnr 811218-9876", "811218-9876", "pnr 811218-9875"),
    ("pt_nif", "NIF 501964843", "501964843", "NIF 501964842"),
    ("pt_cc", "CC 00000000 0 ZZ4", "00000000 0 ZZ4", "CC 00000000 0 ZZ3"),
    (
        "be_nrn",
        "rijksregisternummer 85.07.30-033.28",
        "85.07.30-033.28",
        "rijksregisternummer 85.07.30-033.29",
    ),
    ("ch_ahv", "AHV 756.9217.0769.85", "756.9217.0769.85", "AHV 756.9217.0769.84"),
    ("dk_cpr", "CPR 211062-5629", "211062-5629", "CPR 511062-5629"),
    ("fi_hetu", "hetu 131052-308T", "131052-308T", "hetu 131052-308U"),
    ("no_fodselsnummer", "fnr 15108695088", "15108695088", "fnr 15108695077"),
    ("at_svnr", "SVNR 1237 010180", "1237 010180", "SVNR 2237 010180"),
    ("ie_pps", "PPS 6433435F", "6433435F", "PPS 6433435E"),
    (
        "de_tax_number",
        "Steuernummer 181/815/08155",
        "181/815/08155",
        "Aktenzeichen 181/815/08155",
    ),
    (
        "de_pension_number",
        "Rentenversicherungsnummer 15 070649 C 103",
        "15 070649 C 103",
        "Rentenversicherungsnummer 15 070649 C 104",
    ),
    ("de_pension_number", "SV-Nr. 15070649C103.", "15070649C103", "SV-Nr. 15070649C102."),
    ("de_id_card", "Personalausweis T220001293", "T220001293", "Personalausweis T220001294"),
    ("de_id_card", "Ausweisnummer T22000129", "T22000129", "Seriennummer T22000129"),
    (
        "fr_nif",
        "numéro fiscal 30 23 217 600 053",
        "30 23 217 600 053",
        "numéro fiscal 30 23 217 600 054",
    ),
    ("es_nss", "NSS 28/12345678/40", "28/12345678/40", "NSS 28/12345678/41"),
    (
        "es_nss",
        "seguridad social 280123456742",
        "280123456742",
        "seguridad social 280123456743",
    ),
    ("pt_niss", "NISS 11234567892", "11234567892", "NISS 11234567893"),
    ("pl_nip", "NIP 856-734-62-15", "856-734-62-15", "NIP 856-734-62-16"),
    ("pl_id_card", "dowód osobisty ABA 300000", "ABA 300000", "dowód osobisty ABA 400000"),
    ("be_bis", "BIS 98.47.28-997.65", "98.47.28-997.65", "BIS 98.47.28-997.66"),
    ("fi_veronumero", "veronumero 123456789123", "123456789123", "numero 123456789123"),
    ("at_tax_number", "Steuernummer 59-119/9013", "59-119/9013", "Steuernummer 59-119/9014"),
    ("nl_id_document", "paspoort XR1001R58", "XR1001R58", "paspoort XR1O01R58"),
    (
        "cn_resident_id",
        "身份证号11010519491231002X。",
        "11010519491231002X",
        "身份证号110105194912310021。",
    ),
    ("cn_uscc", "代码 91110000600037341L", "91110000600037341L", "代码 91110000600037342L"),
    ("cn_phone", "电话 +86 138 0013 8000", "+86 138 0013 8000", "电话 +86 038 0013 8000"),
    (
        "jp_my_number",
        "マイナンバー 6214 9832 0257",
        "6214 9832 0257",
        "マイナンバー 6214 9832 0258",
    ),
    ("jp_postal_code", "〒100-0001 東京都", "100-0001", "100-0001 東京都"),
    ("jp_phone", "TEL 090-1234-5678", "090-1234-5678", "TEL 090-1234-567"),
    ("kr_rrn", "RRN 900101-1234568", "900101-1234568", "RRN 900101-1234567"),
    ("kr_brn", "사업자 116-82-00276", "116-82-00276", "사업자 116-82-00275"),
    ("kr_phone", "010-1234-5678", "010-1234-5678", "010-1234-56789"),
    (
        "cn_bank_account",
        "银行卡号 6222 0202 0000 1234 562",
        "6222 0202 0000 1234 562",
        "银行卡号 6222 0202 0000 1234 563",
    ),
    (
        "cn_bank_account",
        "银行账号6222020200001234562。",
        "6222020200001234562",
        "银行账号6222020200001234563。",
    ),
    ("cn_securities_account", "证券账户 A123456789", "A123456789", "编号 A123456789"),
    ("cn_securities_account", "深圳股东账户 0123456789", "0123456789", "编号 0123456789"),
    ("jp_health_insurance", "保険者番号 80123458", "80123458", "保険者番号 80123459"),
    ("jp_health_insurance", "国民健康保険 保険者番号138107", "138107", "保険者番号138108"),
    ("kr_passport", "여권번호 M12345678", "M12345678", "번호 M12345678"),
    ("kr_passport", "여권 M123A4567", "M123A4567", "번호 M123A4567"),
    (
        "ae_emirates_id",
        "Emirates ID 784-1968-6570305-0",
        "784-1968-6570305-0",
        "Emirates ID 784-1968-6570305-1",
    ),
    ("sa_national_id", "national ID 1012345672", "1012345672", "national ID 1012345670"),
    ("sa_iqama", "iqama 2012345670", "2012345670", "iqama 2012345673"),
    ("qa_qid", "QID 28412345678", "28412345678", "ref 28412345678"),
    ("ma_cin", "CIN BE123456", "BE123456", "ref BE123456"),
    ("ng_nin", "NIN: 12345678901", "12345678901", "ref: 12345678901"),
    ("gcc_mena_phone", "+971 50 123 4567", "+971 50 123 4567", "+971 00 123 4567"),
    ("eu_phone", "Tel. +49 30 901820", "+49 30 901820", "Tel. +49 0 901820"),
    ("intl_phone", "call +1 441 295 1234", "+1 441 295 1234", "call +1 441 095 1234"),
]


@pytest.mark.parametrize(("entity", "text", "value", "broken"), CASES, ids=[c[0] for c in CASES])
def test_a_valid_value_is_found_and_a_broken_one_is_not(
    entity: str, text: str, value: str, broken: str
) -> None:
    match = next(m for m in find(text) if m.entity == entity)
    assert match.value == value
    assert text[match.start : match.end] == value
    assert entity not in {m.entity for m in find(broken)}


def test_every_entity_is_exercised_and_grouped() -> None:
    assert {c[0] for c in CASES} == set(ENTITIES)
    assert {e.group for e in ENTITIES.values()} == {
        "universal",
        "us",
        "uk",
        "eu",
        "cjk",
        "gcc_mena",
    }


def test_the_policy_doc_lists_exactly_the_entities_detected() -> None:
    doc = Path(__file__).parents[3] / "docs" / "policies" / "pii.md"
    table = doc.read_text().split("\n## Entities\n", 1)[1]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| ([a-z_]+) \|", table, re.MULTILINE)
    assert dict(rows) == {e.id: e.group for e in ENTITIES.values()}
    assert len(rows) == len(ENTITIES)
