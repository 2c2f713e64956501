"""Generate the annotated dev documents (data/dev/documents/): text PDFs, scanned PDFs, PNG and TIFF faxes.

Each `doc-NN.<ext>` has a `doc-NN.json` beside it with the fields a reader should find
(values normalised: ISO dates, E.164 phones). Fields a document does not carry are absent
from its truth, so an extractor that invents values loses precision. Scans are rendered
with DejaVu fonts, rotated slightly and speckled like a fax. Deterministic.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).parent
OUT = HERE / "documents"
sys.path.insert(0, str(HERE))
from generate_requests import CONDITIONS, DOCTORS, FIRST, ICD, LAST, PAYERS, PRACTICES  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
STREETS = ["Elm Street", "Main St", "Washington Ave", "Beacon St", "Harbor Road", "Maple Lane", "Oak Drive"]
TOWNS = [("Boston", "MA", "02118"), ("Quincy", "MA", "02169"), ("Newton", "MA", "02458"), ("Salem", "MA", "01970")]


def luhn_npi(r: random.Random) -> str:
    base = "1" + "".join(str(r.randint(0, 9)) for _ in range(8))
    digits = [int(d) for d in "80840" + base]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return base + str((10 - total % 10) % 10)


def make_truth(r: random.Random) -> tuple[dict[str, object], dict[str, str]]:
    """Truth (normalised) and how each value is written on the page."""
    first, last = r.choice(FIRST), r.choice(LAST)
    y, m, d = r.randint(1940, 2010), r.randint(1, 12), r.randint(1, 28)
    area, line = r.choice(["617", "508", "781", "857"]), r.randint(100, 199)
    town, state, zipc = r.choice(TOWNS)
    code = r.randrange(len(ICD))
    truth: dict[str, object] = {
        "patient_name": f"{first} {last}", "date_of_birth": f"{y}-{m:02d}-{d:02d}",
        "phone": f"+1{area}5550{line}", "referring_provider": r.choice(DOCTORS),
        "referring_practice": r.choice(PRACTICES), "npi": luhn_npi(r), "insurance_payer": r.choice(PAYERS),
        "member_id": f"{r.choice(['XJH', 'MBR', 'W', 'ZK'])}{r.randint(10000000, 99999999)}",
        "reason": CONDITIONS[code], "icd10_codes": [ICD[code]],
    }
    shown = {
        "patient_name": r.choice([f"{first} {last}", f"{last}, {first}"]),
        "date_of_birth": r.choice([f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{m}/{d}/{y}"]),
        "phone": r.choice([f"({area}) 555-0{line}", f"{area}-555-0{line}", f"{area}.555.0{line}"]),
    }
    if r.random() < 0.5:
        truth["email"] = f"{first.lower()}.{last.lower().replace(chr(39), '')}@example.com"
    if r.random() < 0.6:
        truth["address"] = f"{r.randint(3, 250)} {r.choice(STREETS)}, {town}, {state} {zipc}"
    if r.random() < 0.3:
        truth["urgency"] = "urgent"
    return truth, shown


def layout(r: random.Random, truth: dict[str, object], shown: dict[str, str]) -> list[str]:
    pick = r.choice
    lines = [pick(["REFERRAL FOR CONSULTATION", "Orthopaedic Referral Form", "NEW PATIENT REFERRAL", "FAX - Referral"]),
             f"To: Lakeside Orthopaedics   Date sent: {r.randint(1, 12)}/{r.randint(1, 28)}/2024", ""]
    pairs = [
        (pick(["Patient", "Patient name", "Name"]), shown["patient_name"]),
        (pick(["DOB", "Date of birth"]), shown["date_of_birth"]),
        (pick(["Phone", "Patient phone", "Tel"]), shown["phone"]),
    ]
    if "email" in truth:
        pairs.append(("Email", str(truth["email"])))
    if "address" in truth:
        pairs.append(("Address", str(truth["address"])))
    pairs += [
        (pick(["Insurance", "Insurance carrier", "Payer"]), str(truth["insurance_payer"])),
        (pick(["Member ID", "Subscriber ID", "Policy #"]), str(truth["member_id"])),
        ("", ""),
        (pick(["Referring provider", "Referring physician", "Referred by"]), str(truth["referring_provider"])),
        (pick(["Practice", "Referring practice", "Clinic"]), str(truth["referring_practice"])),
        ("NPI", str(truth["npi"])),
        ("", ""),
        (pick(["Reason for referral", "Reason for consult", "Reason"]), str(truth["reason"])),
        (pick(["ICD-10", "Diagnosis code", "Dx code"]) + " " + str(truth["icd10_codes"][0]), ""),  # type: ignore[index]
    ]
    for label, value in pairs:
        if label and value:
            lines.append(f"{label}: {value}")
        else:
            lines.append(label)
    lines += ["", pick(["Clinical notes: patient has tried NSAIDs and physical therapy without relief.",
                        "Notes: symptoms for 3 months, worse with activity.",
                        "History: no prior surgery on the affected side."])]
    if truth.get("urgency"):
        lines.append(pick(["URGENT: please see within one week.", "Please schedule ASAP.", "Priority: urgent"]))
    lines.append("Thank you for seeing this patient.")
    return lines


def letter(r: random.Random, truth: dict[str, object], shown: dict[str, str]) -> list[str]:
    """A referral letter that names the patient mid-sentence, then a labelled block for the rest."""
    name, dob, reason = shown["patient_name"], shown["date_of_birth"], str(truth["reason"])
    opening = r.choice([
        f"Referring for evaluation. Patient: {name}, DOB {dob}, with {reason}.",
        f"Please see Patient: {name} regarding {reason}. DOB {dob}.",
        f"Thank you for seeing my patient, {name}, DOB {dob}, for {reason}.",
        f"We are sending Pt: {name} (DOB {dob}) for an opinion on {reason}.",
    ])
    lines = [r.choice(["Dear Dr. Lindgren,", "Dear colleague,", "To the orthopaedic team,"]), "", opening,
             r.choice(["The patient tolerated a course of physical therapy without relief.",
                       "Patient: reports pain at night and on stairs.",
                       "Patient education on activity modification was given."]), "",
             f"{r.choice(['Phone', 'Tel'])}: {shown['phone']}"]
    if "email" in truth:
        lines.append(f"Email: {truth['email']}")
    lines += [f"Insurance: {truth['insurance_payer']}", f"Member ID: {truth['member_id']}",
              f"Referred by: {truth['referring_provider']}", f"Practice: {truth['referring_practice']}",
              f"NPI: {truth['npi']}", f"Reason for referral: {reason}",
              f"ICD-10 {truth['icd10_codes'][0]}", ""]  # type: ignore[index]
    if truth.get("urgency"):
        lines.append("Please schedule ASAP.")
    return lines + ["Sincerely,", str(truth["referring_provider"])]


def letters(first: int = 33, count: int = 8, seed: int = 5) -> None:
    """Letters (text PDFs and scans) that give the patient's name in a sentence, not on a form line."""
    r = random.Random(seed)
    for n in range(first, first + count):
        truth, shown = make_truth(r)
        truth.pop("address", None)  # a letter without an address line
        lines = letter(r, truth, shown)
        stem = OUT / f"doc-{n:02d}"
        kind = ["text-pdf", "png"][n % 2]
        if kind == "text-pdf":
            stem.with_suffix(".pdf").write_bytes(text_pdf(lines))
        else:
            scan(r, lines).save(stem.with_suffix(".png"), optimize=True)
        stem.with_suffix(".json").write_text(json.dumps({"kind": f"letter-{kind}", "fields": truth}, indent=1) + "\n")


def text_pdf(lines: list[str]) -> bytes:
    """A minimal one-page PDF with a real text layer (Helvetica)."""
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    body = "BT /F1 11 Tf 14 TL 60 740 Td " + " ".join(f"({esc(line)}) Tj T*" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(body)} >>\nstream\n{body}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def scan(r: random.Random, lines: list[str]) -> Image.Image:
    """Render at 300 dpi (US letter), tilt a little, speckle like a fax, binarise."""
    image = Image.new("L", (2550, 3300), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(r.choice([FONT, MONO]), r.choice([36, 40, 44]))
    y = 200
    for line in lines:
        draw.text((180, y), line, font=font, fill=0)
        y += int(font.size * 1.6)
    image = image.rotate(r.uniform(-1.5, 1.5), fillcolor=255, resample=Image.Resampling.BILINEAR)
    pixels = image.load()
    assert pixels is not None
    for _ in range(4000):
        pixels[r.randrange(image.width), r.randrange(image.height)] = 0
    return image.point(lambda v: 0 if v < 150 else 255).convert("1")


def main(count: int = 32, seed: int = 4) -> None:
    r = random.Random(seed)
    OUT.mkdir(exist_ok=True)
    for n in range(1, count + 1):
        truth, shown = make_truth(r)
        lines = layout(r, truth, shown)
        stem = OUT / f"doc-{n:02d}"
        kind = ["text-pdf", "scan-pdf", "png", "tiff"][n % 4]
        if kind == "text-pdf":
            stem.with_suffix(".pdf").write_bytes(text_pdf(lines))
        elif kind == "scan-pdf":
            scan(r, lines).convert("L").save(stem.with_suffix(".pdf"), resolution=300)
        elif kind == "png":
            scan(r, lines).save(stem.with_suffix(".png"), optimize=True)
        else:  # a two-page fax: a cover sheet, then the referral
            cover = scan(r, ["FAX COVER SHEET", f"From: {truth['referring_practice']}", "Pages: 2",
                             "Confidential health information enclosed."])
            cover.save(stem.with_suffix(".tiff"), compression="group4", save_all=True,
                       append_images=[scan(r, lines)])
        stem.with_suffix(".json").write_text(json.dumps({"kind": kind, "fields": truth}, indent=1) + "\n")
    letters(count + 1)
    print(f"wrote {count + 8} documents to {OUT}")


if __name__ == "__main__":
    main()
