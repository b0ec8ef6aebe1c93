"""National identity, tax and social-security numbers of the 14 EU/EFTA countries of seed
003 (DE, FR, ES, IT, NL, PL, SE, PT, BE, CH, DK, FI, NO, AT) and Ireland, each validated
with ``python-stdnum`` (check digits, and the birth date where the number holds one).
Three numbers ``python-stdnum`` does not know have their check written here, each from
its official definition (cited at the function): the German pension-insurance number,
the Spanish social-security number and the Portuguese NISS; so have the check digits of
the German and the Polish identity cards.

Counted without context: numbers whose check is strong (mod 97, two check digits, a
check letter, a check digit over an embedded date). Only after a keyword: the Dutch BSN
and the Portuguese NIF (nine digits, one mod-11 digit: about one random nine-digit number
in eleven passes), the Danish CPR (a date and four digits; the mod-11 rule was dropped in
2007), the Austrian social-security number (ten digits, one check digit), and the tax
and social-security numbers whose check is one digit or none: the German Steuernummer
(its regional format only), the Austrian Abgabenkontonummer, the French tax number (SPI,
mod 511), the Polish NIP, the Finnish veronumero (no check digit), the Spanish NSS (mod
97, but twelve bare digits), the Portuguese NISS; and the identity documents' numbers
(the German and Polish identity cards, the Dutch identity card or passport).

Where a country has one number for several uses it is listed once: the Swedish
personnummer, the Danish CPR, the Norwegian fødselsnummer, the Belgian national register
number, the Dutch BSN and the Italian codice fiscale are identity, tax and
social-security number at once; the Swiss AHV number is also the tax number; the
Polish PESEL is the social-security number and individuals' tax number.

Known gap: a French NIR of someone born in Corsica (department ``2A``/``2B``) is split by
its letter into two short digit runs and is not found."""

from __future__ import annotations

import re
from datetime import date

from stdnum.at import tin as at_tin
from stdnum.at import vnr
from stdnum.be import bis, nn
from stdnum.ch import ssn as ch_ssn
from stdnum.de import idnr, stnr
from stdnum.dk import cpr
from stdnum.es import dni, nie
from stdnum.fi import hetu, veronumero
from stdnum.fr import nif as fr_nif
from stdnum.fr import nir
from stdnum.ie import pps
from stdnum.it import codicefiscale
from stdnum.nl import bsn, identiteitskaartnummer
from stdnum.no import fodselsnummer
from stdnum.pl import nip, pesel
from stdnum.pt import cc, nif
from stdnum.se import personnummer

from trustgate_core.pii.base import (
    NUM_L,
    NUM_R,
    WORD_L,
    WORD_R,
    Detector,
    checked,
    keywords,
    only_digits,
)
from trustgate_core.pii.model import Entity


def _eu(id_: str, description: str) -> Entity:
    return Entity(id_, "eu", description)


DE_TAX_ID = _eu("de_tax_id", "German tax identification number (Steuer-IdNr)")
FR_NIR = _eu("fr_nir", "French social-security number (NIR)")
ES_DNI = _eu("es_dni", "Spanish national identity number (DNI)")
ES_NIE = _eu("es_nie", "Spanish foreigner identity number (NIE)")
IT_TAX_CODE = _eu("it_tax_code", "Italian fiscal code (codice fiscale)")
NL_BSN = _eu("nl_bsn", "Dutch citizen service number (BSN, after a keyword)")
PL_PESEL = _eu("pl_pesel", "Polish national identification number (PESEL)")
SE_PERSONNUMMER = _eu("se_personnummer", "Swedish personal identity number")
PT_NIF = _eu("pt_nif", "Portuguese tax number (NIF, after a keyword)")
PT_CC = _eu("pt_cc", "Portuguese citizen card number (Cartão de Cidadão)")
BE_NRN = _eu("be_nrn", "Belgian national register number")
CH_AHV = _eu("ch_ahv", "Swiss social-security number (AHV/AVS)")
DK_CPR = _eu("dk_cpr", "Danish personal identification number (CPR, after a keyword)")
FI_HETU = _eu("fi_hetu", "Finnish personal identity code (HETU)")
NO_FNR = _eu("no_fodselsnummer", "Norwegian national identity number (fødselsnummer)")
AT_SVNR = _eu("at_svnr", "Austrian social-security number (after a keyword)")
IE_PPS = _eu("ie_pps", "Irish Personal Public Service number")
DE_TAX_NUMBER = _eu("de_tax_number", "German tax number (Steuernummer, after a keyword)")
DE_PENSION_NUMBER = _eu(
    "de_pension_number", "German pension/social insurance number (Rentenversicherungsnummer)"
)
DE_ID_CARD = _eu("de_id_card", "German identity card number (after a keyword)")
FR_NIF = _eu("fr_nif", "French tax number (numéro fiscal/SPI, after a keyword)")
ES_NSS = _eu("es_nss", "Spanish social-security number (NSS, after a keyword)")
NL_ID_DOCUMENT = _eu("nl_id_document", "Dutch identity card or passport number (after a keyword)")
PL_NIP = _eu("pl_nip", "Polish tax number (NIP, after a keyword)")
PT_NISS = _eu("pt_niss", "Portuguese social-security number (NISS, after a keyword)")
PL_ID_CARD = _eu("pl_id_card", "Polish identity card number (dowód osobisty, after a keyword)")
BE_BIS = _eu("be_bis", "Belgian BIS number")
FI_VERONUMERO = _eu("fi_veronumero", "Finnish individual tax number (veronumero, after a keyword)")
AT_TAX_NUMBER = _eu("at_tax_number", "Austrian tax number (Abgabenkontonummer, after a keyword)")

# Italian fiscal codes replace digits with these letters when two people would collide.
_CF_DIGIT = "[0-9LMNPQRSTUV]"


def _pension_number(value: str) -> bool:
    """The German pension-insurance number (Versicherungsnummer der Rentenversicherung,
    VKVV § 2): area (2 digits), birth date DDMMYY, the birth name's initial, a serial (2
    digits) and a check digit. The check (VKVV § 2 Abs. 5, as the Deutsche
    Rentenversicherung publishes it): the letter becomes its two-digit place in the
    alphabet (A = 01), the first twelve digits are weighted 2 1 2 5 7 1 2 1 2 1 2 1, the
    digit sums of the products are added, and the sum modulo 10 is the check digit."""
    number = value.replace(" ", "")
    letter = ord(number[8]) - 64
    digits = [int(ch) for ch in f"{number[:8]}{letter:02d}{number[9:11]}"]
    weighted = (d * w for d, w in zip(digits, (2, 1, 2, 5, 7, 1, 2, 1, 2, 1, 2, 1), strict=True))
    if sum(p // 10 + p % 10 for p in weighted) % 10 != int(number[11]):
        return False
    try:
        date(2000 + int(number[6:8]), int(number[4:6]), int(number[2:4]))
    except ValueError:
        return False
    return number[:2] != "00"


# ICAO Doc 9303 part 3 §4.9: letters count 10 (A) to 35 (Z), weights 7 3 1 repeated.
_ICAO = {ch: i for i, ch in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def _id_card(value: str) -> bool:
    """The German identity card's number (Personalausweisgesetz; nine characters from
    digits and the consonants C F G H J K L M N P R T V W X Y Z), as printed, or with the
    ICAO 9303 check digit of its machine-readable zone, which must then be right."""
    if len(value) == 9:
        return True
    total = sum(_ICAO[ch] * (7, 3, 1)[i % 3] for i, ch in enumerate(value[:9]))
    return total % 10 == int(value[9])


def _pl_id_card(value: str) -> bool:
    """The Polish identity card's number (seria i numer dowodu osobistego: three letters,
    then a check digit and five digits), as the Minister of the Interior's regulation on
    identity cards (rozporządzenie w sprawie dowodów osobistych) defines its check: the
    letters count 10 (A) to 35 (Z), the nine characters are weighted 7 3 1 9 7 3 1 7 3,
    and the sum is a multiple of 10."""
    weights = (7, 3, 1, 9, 7, 3, 1, 7, 3)
    return sum(_ICAO[ch] * w for ch, w in zip(value, weights, strict=True)) % 10 == 0


def _es_nss(value: str) -> bool:
    """The Spanish social-security number (número de la Seguridad Social / de afiliación,
    Tesorería General de la Seguridad Social): a province (01-53, or 66-99 for
    special registrations), eight digits and two
    control digits, (province * 10^8 + number) modulo 97, where a number below 10^7 is
    taken without its leading zero (province * 10^7 + number)."""
    digits = only_digits(value)
    province, number, control = int(digits[:2]), int(digits[2:10]), int(digits[10:])
    if not (1 <= province <= 53 or province >= 66):
        return False
    base = province * 10**7 + number if number < 10**7 else int(digits[:10])
    return base % 97 == control


def _pt_niss(value: str) -> bool:
    """The Portuguese social-security number (NISS, Instituto da Segurança Social): eleven
    digits, 1 for a person or 2 for an entity, then nine digits and a check digit: 9 minus
    the sum of the first ten digits weighted 29 23 19 17 13 11 7 5 3 2, modulo 10."""
    weights = (29, 23, 19, 17, 13, 11, 7, 5, 3, 2)
    total = sum(int(ch) * w for ch, w in zip(value[:10], weights, strict=True))
    return 9 - total % 10 == int(value[10])


def _belgian(value: str) -> str | None:
    if nn.is_valid(value):
        return BE_NRN.id
    return BE_BIS.id if bis.is_valid(value) else None


DETECTORS: tuple[Detector, ...] = (
    Detector(
        (BE_NRN, BE_BIS),
        re.compile(NUM_L + r"\d{2}\.?\d{2}\.?\d{2}[\- ]?\d{3}\.?\d{2}" + NUM_R),
        _belgian,
        min_digits=11,
    ),
    checked(
        DE_PENSION_NUMBER,
        NUM_L + r"\d{2} ?\d{6} ?[A-Z] ?\d{3}" + WORD_R,
        _pension_number,
        min_digits=8,
    ),
    checked(
        CH_AHV, NUM_L + r"756[. ]?\d{4}[. ]?\d{4}[. ]?\d{2}" + NUM_R, ch_ssn.is_valid, min_digits=13
    ),
    checked(
        FR_NIR,
        NUM_L + r"[1-478] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}" + NUM_R,
        nir.is_valid,
        # a Corsican department (2A, 2B) splits the number's digits into runs of 6 and 8
        min_digits=6,
    ),
    checked(
        IT_TAX_CODE,
        WORD_L
        + rf"[A-Z]{{6}}{_CF_DIGIT}{{2}}[A-EHLMPRST]{_CF_DIGIT}{{2}}[A-Z]{_CF_DIGIT}{{3}}[A-Z]"
        + WORD_R,
        codicefiscale.is_valid,
        min_digits=2,
    ),
    checked(PL_PESEL, NUM_L + r"\d{11}" + NUM_R, pesel.is_valid, min_digits=11),
    checked(NO_FNR, NUM_L + r"\d{6} ?\d{5}" + NUM_R, fodselsnummer.is_valid, min_digits=11),
    checked(DE_TAX_ID, NUM_L + r"\d{2} ?\d{3} ?\d{3} ?\d{3}" + NUM_R, idnr.is_valid, min_digits=11),
    checked(
        FI_HETU, NUM_L + r"\d{6}[\-+A-FU-Y]\d{3}[0-9A-Y]" + WORD_R, hetu.is_valid, min_digits=6
    ),
    checked(
        SE_PERSONNUMMER,
        NUM_L + r"(?:\d{2})?\d{6}[\-+]?\d{4}" + NUM_R,
        personnummer.is_valid,
        min_digits=10,
    ),
    checked(ES_DNI, NUM_L + r"\d{8}-?[A-Z]" + WORD_R, dni.is_valid, min_digits=8),
    checked(ES_NIE, WORD_L + r"[XYZ]-?\d{7}-?[A-Z]" + WORD_R, nie.is_valid, min_digits=7),
    checked(PT_CC, NUM_L + r"\d{8} ?\d ?[A-Z]{2}\d" + WORD_R, cc.is_valid, min_digits=9),
    checked(IE_PPS, NUM_L + r"\d{7}[A-W][ABWTX]?" + WORD_R, pps.is_valid, min_digits=7),
    checked(
        NL_BSN,
        NUM_L + r"(?:\d{9}|\d{4}\.\d{2}\.\d{3})" + NUM_R,
        bsn.is_valid,
        context=keywords("bsn", "burgerservicenummer", "sofinummer"),
        min_digits=9,
    ),
    checked(
        PT_NIF,
        NUM_L + r"\d{9}" + NUM_R,
        nif.is_valid,
        context=keywords("nif", "contribuinte", "nipc"),
        min_digits=9,
    ),
    checked(
        DK_CPR,
        NUM_L + r"\d{6}-?\d{4}" + NUM_R,
        cpr.is_valid,
        context=keywords("cpr", "personnummer"),
        min_digits=10,
    ),
    checked(
        AT_SVNR,
        NUM_L + r"\d{4} ?\d{6}" + NUM_R,
        vnr.is_valid,
        context=keywords("svnr", "sv-nr", "sozialversicherung", "versicherungsnummer"),
        min_digits=10,
    ),
    checked(
        DE_TAX_NUMBER,
        NUM_L + r"(?:\d{2,3}/\d{3,4}/\d{4,5}|\d{10,13})" + NUM_R,
        stnr.is_valid,
        context=keywords("steuernummer", "st.-nr", "st.nr", "stnr", "steuer-nr"),
        min_digits=10,
    ),
    checked(
        AT_TAX_NUMBER,
        NUM_L + r"\d{2}[\- ]?\d{3}/?\d{4}" + NUM_R,
        at_tin.is_valid,
        context=keywords(
            "steuernummer", "st.-nr", "st.nr", "stnr", "abgabenkonto", "finanzamt", "steuer-nr"
        ),
        min_digits=9,
    ),
    checked(
        FR_NIF,
        NUM_L + r"[0-3]\d ?\d{2} ?\d{3} ?\d{3} ?\d{3}" + NUM_R,
        fr_nif.is_valid,
        context=keywords(
            "numéro fiscal", "numero fiscal", "n° fiscal", "nif", "identifiant fiscal"
        ),
        min_digits=13,
    ),
    checked(
        ES_NSS,
        NUM_L + r"\d{2}([ /\-]?)\d{8}\1\d{2}" + NUM_R,
        _es_nss,
        context=keywords(
            "seguridad social", "nss", "naf", "afiliación", "afiliacion", "social security"
        ),
        min_digits=12,
    ),
    checked(
        PT_NISS,
        NUM_L + r"[12]\d{10}" + NUM_R,
        _pt_niss,
        context=keywords("niss", "segurança social", "seguranca social"),
        min_digits=11,
    ),
    checked(
        PL_NIP,
        NUM_L + r"(?:\d{3}-?\d{3}-?\d{2}-?\d{2}|\d{3}-\d{2}-\d{2}-\d{3})" + NUM_R,
        nip.is_valid,
        context=keywords("nip"),
        min_digits=10,
    ),
    checked(
        FI_VERONUMERO,
        NUM_L + r"\d{12}" + NUM_R,
        veronumero.is_valid,
        context=keywords("veronumero", "veronro"),
        min_digits=12,
    ),
    Detector(
        (DE_ID_CARD,),
        re.compile(WORD_L + r"[CFGHJKLMNPRTVWXYZ][0-9CFGHJKLMNPRTVWXYZ]{8}\d?" + WORD_R),
        lambda v: DE_ID_CARD.id if _id_card(v) else None,
        keywords("personalausweis", "ausweisnummer", "ausweis-nr", "ausweisnr"),
        anchor="",
    ),
    checked(
        PL_ID_CARD,
        WORD_L + r"[A-Z]{3} ?\d{6}" + WORD_R,
        lambda v: _pl_id_card(v.replace(" ", "")),
        context=keywords("dowód", "dowod", "dowodu"),
        min_digits=6,
    ),
    Detector(
        (NL_ID_DOCUMENT,),
        re.compile(WORD_L + r"[A-NP-Z]{2}[0-9A-NP-Z]{6}\d" + WORD_R),
        lambda v: NL_ID_DOCUMENT.id if identiteitskaartnummer.is_valid(v) else None,
        keywords(
            "identiteitskaart",
            "id-kaart",
            "idkaart",
            "paspoort",
            "documentnummer",
            "reisdocument",
        ),
        anchor="",
    ),
)
