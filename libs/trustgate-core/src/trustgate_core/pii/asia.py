"""Chinese, Japanese and Korean entities (group ``cjk``).

Counted without context: the Chinese resident ID (18 characters: a province code, the
birth date and an ISO 7064 check character; the county is not looked up, which would
cost a database search per candidate), the Chinese unified social credit code (its check
character), the Korean resident registration number (birth date, and its check digit for
numbers issued before October 2020), the Korean business registration number written
``123-45-67890`` (its National Tax Service check digit, which ``stdnum`` does not test) and a Japanese postal code after its 〒 mark.

Only after a keyword: the Japanese My Number (twelve digits, one check digit: one random
twelve-digit number in ten passes); a Chinese bank card account (16-19 digits, the ISO/IEC
7812 Luhn digit; corporate accounts, which have no check digit, are not found); a Chinese
securities (stock) account (Shanghai: a letter and nine digits; Shenzhen: ten digits from
0; no check digit); the Japanese health-insurance insurer number (保険者番号: eight digits,
or six for the national health insurance, with a Luhn check digit; the insured person's own
記号・番号 has no fixed format and is not found); the Korean passport number (a letter and
eight digits, or since 2021 a letter, three digits, a letter and four digits; no check
digit)."""

from __future__ import annotations

from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError
from stdnum.jp import in_
from stdnum.kr import brn, rrn

from trustgate_core.pii.base import (
    NUM_L,
    NUM_R,
    WORD_L,
    WORD_R,
    Detector,
    checked,
    keywords,
    luhn,
    only_digits,
    structural,
)
from trustgate_core.pii.model import Entity

CN_RESIDENT_ID = Entity("cn_resident_id", "cjk", "Chinese resident identity card number")
CN_USCC = Entity("cn_uscc", "cjk", "Chinese unified social credit code")
JP_MY_NUMBER = Entity("jp_my_number", "cjk", "Japanese My Number (after a keyword)")
JP_POSTAL_CODE = Entity("jp_postal_code", "cjk", "Japanese postal code (after 〒)")
KR_RRN = Entity("kr_rrn", "cjk", "Korean resident registration number")
KR_BRN = Entity("kr_brn", "cjk", "Korean business registration number")
CN_BANK_ACCOUNT = Entity(
    "cn_bank_account", "cjk", "Chinese bank card account (Luhn, after a keyword)"
)
CN_SECURITIES_ACCOUNT = Entity(
    "cn_securities_account", "cjk", "Chinese securities account (after a keyword)"
)
JP_HEALTH_INSURANCE = Entity(
    "jp_health_insurance", "cjk", "Japanese health-insurance insurer number (after a keyword)"
)
KR_PASSPORT = Entity("kr_passport", "cjk", "Korean passport number (after a keyword)")

# The USCC alphabet: digits and capitals without I, O, S, V, Z.
_USCC = "[0-9A-HJ-NPQRTUWXY]"


# The first two digits of a resident ID: the province-level division.
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82 83 91".split()
)


def _business_number(value: str) -> bool:
    if not brn.is_valid(value):
        return False
    d = [ord(ch) - 48 for ch in value if ch.isdigit()]
    total = sum(a * b for a, b in zip(d[:9], (1, 3, 7, 1, 3, 7, 1, 3, 5), strict=True))
    total += d[8] * 5 // 10
    return (10 - total % 10) % 10 == d[9]


def _resident_id(value: str) -> bool:
    number = value.upper()
    if number[:2] not in _PROVINCES or number[-1] != ric.calc_check_digit(number):
        return False
    try:
        ric.get_birth_date(number)
    except ValidationError:
        return False
    return True


def _luhn(value: str) -> bool:
    return luhn(only_digits(value))


#: Checked before the payment card (a UnionPay card after 银行卡 is a bank account).
BEFORE_CARDS: tuple[Detector, ...] = (
    checked(
        CN_BANK_ACCOUNT,
        NUM_L + r"(?:\d{4}( ?)\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?|\d{16,19})" + NUM_R,
        _luhn,
        min_digits=16,
        context=keywords(
            "银行卡", "银行账", "银行帐", "账号", "帐号", "卡号", "开户", "銀行帳", "银联"
        ),
    ),
)

DETECTORS: tuple[Detector, ...] = (
    checked(CN_RESIDENT_ID, NUM_L + r"\d{17}[\dXx]" + WORD_R, _resident_id, min_digits=17),
    checked(
        CN_USCC,
        WORD_L + rf"(?=[0-9A-Z]*\d){_USCC}{{2}}\d{{6}}{_USCC}{{10}}" + WORD_R,
        uscc.is_valid,
        min_digits=6,
    ),
    checked(KR_RRN, NUM_L + r"\d{6}-?\d{7}" + NUM_R, rrn.is_valid, min_digits=13),
    checked(KR_BRN, NUM_L + r"\d{3}-\d{2}-\d{5}" + NUM_R, _business_number, min_digits=10),
    checked(JP_POSTAL_CODE, r"〒 ?(?P<v>\d{3}-?\d{4})" + NUM_R, structural, min_digits=7),
    checked(
        JP_MY_NUMBER,
        NUM_L + r"\d{4}([ \-]?)\d{4}\1\d{4}" + NUM_R,
        in_.is_valid,
        min_digits=12,
        context=keywords("マイナンバー", "個人番号", "my number", "mynumber", "individual number"),
    ),
    checked(
        CN_SECURITIES_ACCOUNT,
        WORD_L + r"(?:[A-F]\d{9}|0\d{9})" + NUM_R,
        structural,
        min_digits=9,
        context=keywords(
            "证券账",
            "证券帐",
            "股东账",
            "股东帐",
            "股东代码",
            "股东卡",
            "证券代码",
            "securities account",
            "stock account",
        ),
    ),
    checked(
        JP_HEALTH_INSURANCE,
        NUM_L + r"(?:\d{8}|\d{6})" + NUM_R,
        luhn,
        min_digits=6,
        context=keywords("保険者番号", "保険証", "被保険者", "健康保険", "health insurance"),
    ),
    checked(
        KR_PASSPORT,
        WORD_L + r"(?:[MSRGDT]\d{8}|[MSRGDT]\d{3}[A-Z]\d{4})" + WORD_R,
        structural,
        min_digits=3,
        context=keywords("여권", "passport"),
    ),
)
