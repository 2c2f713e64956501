"""Generate page texts by kind, for splitting fax packets by page classification.

Writes `closeloop/understanding/data/page_kinds.csv` (the examples the page classifier ships
with) and `data/dev/pages_test.csv` (held-out pages, other seeds and layouts), and
`data/dev/packets/packet-01.pdf` with `packet-01.json`: a five-page fax packet (cover sheet,
referral letter, insurance card, two pages of clinical notes), the letter and the card as
scanned images, the rest with a text layer. Deterministic.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from generate_documents import scan, text_pdf  # noqa: E402
from generate_requests import CONDITIONS, DOCTORS, ICD, PAYERS, PRACTICES, dob, name, phone  # noqa: E402

PACKAGE = HERE.parent.parent / "closeloop" / "understanding" / "data"


def cover_sheet(r: random.Random) -> list[str]:
    return [r.choice(["FAX", "FACSIMILE TRANSMITTAL", "Fax Cover Sheet", "FAX COVER"]),
            f"To: {r.choice(['Orthopedic Associates', 'Intake', 'Referral coordinator', 'Scheduling'])}",
            f"From: {r.choice(PRACTICES)}", f"Fax: {phone(r)}  Phone: {phone(r)}",
            f"Pages (including cover): {r.randint(2, 9)}",
            r.choice(["Re: referral", "Re: patient records", "Re: new patient", "Urgent - please review"]),
            r.choice(["The documents accompanying this facsimile are confidential.",
                      "If you received this fax in error please notify the sender.",
                      "This transmission contains protected health information."])]


def referral_letter(r: random.Random) -> list[str]:
    return [r.choice(PRACTICES), f"{r.choice(['Date', 'Dated'])}: {r.randint(1, 12)}/{r.randint(1, 28)}/2026",
            r.choice(["Dear Colleague,", "Dear Dr. Shah,", "To the orthopedic team,"]),
            f"I am referring my patient {name(r)}, DOB {dob(r)}, for {r.choice(['evaluation', 'consultation'])}",
            f"of {r.choice(CONDITIONS)}. Diagnosis: {r.choice(ICD)}.",
            r.choice(["Reason for referral: persistent pain despite physical therapy.",
                      "Please evaluate for surgical options.", "Conservative treatment has failed."]),
            f"Referring provider: {r.choice(DOCTORS)}", "Thank you for seeing this patient.",
            r.choice(["Sincerely,", "Best regards,", "Kind regards,"])]


def insurance_card(r: random.Random) -> list[str]:
    return [r.choice(PAYERS), r.choice(["Member ID Card", "Insurance Card", "Health Plan ID", "MEMBER CARD"]),
            f"Member: {name(r).upper()}", f"Member ID: {r.choice('ABCXYZ')}{r.randint(10000000, 99999999)}",
            f"Group No: {r.randint(100000, 999999)}", f"Plan: {r.choice(['PPO', 'HMO', 'POS', 'EPO'])}",
            f"Copay: PCP ${r.choice([10, 20, 25])}  Specialist ${r.choice([30, 40, 50])}  ER ${r.choice([100, 150])}",
            f"Rx BIN {r.randint(100000, 999999)}  PCN {r.choice(['ADV', 'RX1', 'CVS'])}",
            f"Customer service {phone(r)}"]


def clinical_notes(r: random.Random) -> list[str]:
    return [r.choice(["OFFICE VISIT NOTE", "Progress Note", "Clinical Notes", "History and Physical"]),
            f"Patient: {name(r)}  DOB: {dob(r)}",
            f"Chief complaint: {r.choice(CONDITIONS)}.",
            r.choice(["HPI: Pain for 3 months, worse with activity, improved with rest.",
                      "History of present illness: gradual onset, no trauma.",
                      "Subjective: reports swelling and stiffness in the morning."]),
            r.choice(["Exam: tenderness to palpation, range of motion limited.",
                      "Physical exam: positive McMurray, mild effusion.",
                      "Objective: strength 4/5, sensation intact."]),
            f"Assessment: {r.choice(ICD)} {r.choice(CONDITIONS)}.",
            r.choice(["Plan: NSAIDs, physical therapy, follow up in 6 weeks.",
                      "Plan: MRI ordered, refer to orthopedics.", "Plan: continue home exercises."]),
            f"Electronically signed by {r.choice(DOCTORS)}"]


def lab_results(r: random.Random) -> list[str]:
    tests = [("WBC", "4.5-11.0"), ("Hemoglobin", "13.5-17.5"), ("Platelets", "150-400"), ("CRP", "<10"),
             ("ESR", "0-20"), ("Glucose", "70-99"), ("Creatinine", "0.6-1.2"), ("Uric acid", "3.5-7.2")]
    lines = [r.choice(["LABORATORY REPORT", "Lab Results", "Quest Diagnostics", "Pathology and Laboratory"]),
             f"Patient: {name(r)}  DOB: {dob(r)}", f"Collected: {r.randint(1, 12)}/{r.randint(1, 28)}/2026",
             "Test  Result  Flag  Reference range"]
    for test, ref in r.sample(tests, 5):
        lines.append(f"{test}  {round(r.uniform(1, 200), 1)}  {r.choice(['', 'H', 'L', ''])}  {ref}")
    lines.append(r.choice(["Specimen: serum", "Final report", "Ordering physician: " + r.choice(DOCTORS)]))
    return lines


KINDS = {"cover_sheet": cover_sheet, "referral_letter": referral_letter, "insurance_card": insurance_card,
         "clinical_notes": clinical_notes, "lab_results": lab_results}


def rows(r: random.Random, per_kind: int) -> list[dict[str, str]]:
    out = []
    for kind, make in KINDS.items():
        for _ in range(per_kind):
            lines = make(r)
            r.shuffle(lines[1:-1]) if r.random() < 0.3 else None
            out.append({"text": "\n".join(lines), "label": kind})
    r.shuffle(out)
    return out


def packet() -> tuple[bytes, dict[str, object]]:
    import pypdfium2 as pdfium

    r = random.Random(7)
    plan = [("cover_sheet", False), ("referral_letter", True), ("insurance_card", True),
            ("clinical_notes", False), ("clinical_notes", False)]
    out = pdfium.PdfDocument.new()
    for kind, scanned in plan:
        lines = KINDS[kind](r)
        if scanned:
            buf = io.BytesIO()
            scan(r, lines).save(buf, "PDF", resolution=300)
            part = pdfium.PdfDocument(buf.getvalue())
        else:
            part = pdfium.PdfDocument(text_pdf(lines))
        out.import_pages(part)
    buf = io.BytesIO()
    out.save(buf)
    truth = {"pages": [kind for kind, _ in plan],
             "parts": [["cover_sheet", 1, 1], ["referral_letter", 2, 2], ["insurance_card", 3, 3],
                       ["clinical_notes", 4, 5]]}
    return buf.getvalue(), truth


def write(path: Path, part: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(part)


def main() -> None:
    write(PACKAGE / "page_kinds.csv", rows(random.Random(11), 40))
    write(HERE / "pages_test.csv", rows(random.Random(12), 20))
    data, truth = packet()
    (HERE / "packets" / "packet-01.pdf").write_bytes(data)
    (HERE / "packets" / "packet-01.json").write_text(json.dumps(truth, indent=2) + "\n")
    print("wrote page kinds, held-out pages and packet-01")


if __name__ == "__main__":
    main()
