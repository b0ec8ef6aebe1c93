"""Each entity: a valid example in a sentence is found whole, and the same number with a
broken check (or without its keyword, for weak patterns) is not PII."""

from __future__ import annotations

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
