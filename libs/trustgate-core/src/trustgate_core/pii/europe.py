"""National identity, tax and social-security numbers of the 14 EU/EFTA countries of seed
003 (DE, FR, ES, IT, NL, PL, SE, PT, BE, CH, DK, FI, NO, AT) and Ireland, each validated
with ``python-stdnum`` (check digits, and the birth date where the number holds one).

Counted without context: numbers whose check is strong (mod 97, two check digits, a
check letter, a check digit over an embedded date). Only after a keyword: the Dutch BSN
and the Portuguese NIF (nine digits, one mod-11 digit: about one random nine-digit number
in eleven passes), the Danish CPR (a date and four digits; the mod-11 rule was dropped in
2007) and the Austrian social-security number (ten digits, one check digit).

Known gap: a French NIR of someone born in Corsica (department ``2A``/``2B``) is split by
its letter into two short digit runs and is not found."""

from __future__ import annotations

from stdnum.at import vnr
from stdnum.be import nn
from stdnum.ch import ssn as ch_ssn
from stdnum.de import idnr
from stdnum.dk import cpr
from stdnum.es import dni, nie
from stdnum.fi import hetu
from stdnum.fr import nir
from stdnum.ie import pps
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.no import fodselsnummer
from stdnum.pl import pesel
from stdnum.pt import cc, nif
from stdnum.se import personnummer

from trustgate_core.pii.base import NUM_L, NUM_R, WORD_L, WORD_R, Detector, checked, keywords
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

# Italian fiscal codes replace digits with these letters when two people would collide.
_CF_DIGIT = "[0-9LMNPQRSTUV]"

DETECTORS: tuple[Detector, ...] = (
    checked(
        BE_NRN,
        NUM_L + r"\d{2}\.?\d{2}\.?\d{2}[\- ]?\d{3}\.?\d{2}" + NUM_R,
        nn.is_valid,
        min_digits=11,
    ),
    checked(
        CH_AHV, NUM_L + r"756[. ]?\d{4}[. ]?\d{4}[. ]?\d{2}" + NUM_R, ch_ssn.is_valid, min_digits=13
    ),
    checked(
        FR_NIR,
        NUM_L + r"[1-478] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}" + NUM_R,
        nir.is_valid,
        min_digits=13,
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
)
