"""Generate the labelled dev set of requests (data/dev/requests_{train,test}.csv).

Templates + slot fillers, with typos, greetings, signatures and forwarded-mail noise, so that
the classifier sees the variety a real front desk sees. Deterministic: `python
data/dev/generate_requests.py` rewrites the same files. Labels: referral, appointment,
records, refill, billing, results, and `oos` for requests that fit none of them.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).parent

FIRST = ["Maria", "James", "Aisha", "Robert", "Linda", "Tomasz", "Grace", "Peter", "Sofia", "David", "Keisha",
         "Hiroshi", "Fatima", "Liam", "Olivia", "Noah", "Emma", "Wei", "Carlos", "Priya", "Ahmed", "Chloe",
         "Dmitri", "Ana", "Kwame", "Mei", "Jose", "Ruth", "Samuel", "Ingrid"]
LAST = ["Gonzalez", "O'Connor", "Rahman", "Chen", "Brooks", "Nowak", "Mensah", "Lindqvist", "Rossi", "Cohen",
        "Washington", "Tanaka", "Haddad", "Murphy", "Nguyen", "Smith", "Johnson", "Okafor", "Schmidt", "Patel",
        "Kowalski", "Fernandez", "Abebe", "Kim", "Dubois", "Silva", "Ivanova", "Larsen", "Baptiste", "Yilmaz"]
DOCTORS = ["Dr. Shah", "Dr. Patel", "Dr. Eleanor Whitfield", "Dr. Ramirez", "Dr. Okafor", "Dr. Kim", "Dr. Hughes",
           "Dr. Bianchi", "Dr. Nakamura", "Dr. Adeyemi", "Dr. Lopez", "Dr. Fischer"]
PRACTICES = ["Harbor Family Medicine", "Northside Primary Care", "Beacon Hill Internal Medicine",
             "Riverbend Pediatrics", "Westfield Community Health", "Maple Street Clinic", "Summit Urgent Care",
             "Lakeview Family Practice"]
CONDITIONS = ["right knee pain, suspected meniscal tear", "left shoulder impingement", "lumbar radiculopathy",
              "hip osteoarthritis", "rotator cuff tear", "carpal tunnel syndrome", "ACL rupture",
              "chronic low back pain", "ankle instability after sprain", "trigger finger", "plantar fasciitis",
              "cervical stenosis with arm numbness", "distal radius fracture follow-up", "hallux valgus"]
ICD = ["M23.221", "M75.42", "M54.16", "M16.11", "M75.101", "G56.01", "S83.511A", "M54.50", "M25.371",
       "M65.331", "M72.2", "M48.02", "S52.501A", "M20.11"]
MEDS = ["meloxicam 15 mg", "tramadol 50 mg", "celecoxib 200 mg", "naproxen 500mg", "cyclobenzaprine 10 mg",
        "gabapentin 300 mg", "diclofenac gel", "methocarbamol 750 mg", "prednisone 10mg", "oxycodone 5 mg"]
PHARMACIES = ["CVS on Main St", "Walgreens #4411", "Rite Aid in Quincy", "the Stop & Shop pharmacy",
              "Costco pharmacy", "Walmart pharmacy on Route 9", "Brookline Apothecary"]
TESTS = ["MRI", "X-ray", "CT scan", "blood work", "nerve conduction study", "bone density scan", "ultrasound",
         "EMG", "MRI of my knee", "lumbar MRI", "shoulder x-rays"]
PAYERS = ["Blue Cross Blue Shield", "Aetna", "Harvard Pilgrim", "Tufts Health Plan", "UnitedHealthcare",
          "Cigna", "Medicare", "MassHealth"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "next week", "the 14th", "March 3",
        "sometime next month", "after the 20th", "tomorrow afternoon"]
FIRMS = ["Morrison & Hale LLP", "Cutler Injury Law", "the law office of Brenda Voss", "Kline Legal Group"]


def name(r: random.Random) -> str:
    return f"{r.choice(FIRST)} {r.choice(LAST)}"


def dob(r: random.Random) -> str:
    y, m, d = r.randint(1938, 2012), r.randint(1, 12), r.randint(1, 28)
    return r.choice([f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{m}/{d}/{y}"])


def phone(r: random.Random) -> str:
    a, b = r.choice(["617", "508", "781", "857", "978"]), r.randint(100, 999)
    return r.choice([f"({a}) 555-0{r.randint(100, 199)}", f"{a}-555-0{r.randint(100, 199)}", f"{a}.{b}.0{b}"])


def fill(r: random.Random, text: str) -> str:
    slots = {
        "{name}": lambda: name(r), "{dob}": lambda: dob(r), "{phone}": lambda: phone(r),
        "{doctor}": lambda: r.choice(DOCTORS), "{practice}": lambda: r.choice(PRACTICES),
        "{condition}": lambda: r.choice(CONDITIONS), "{icd}": lambda: r.choice(ICD),
        "{med}": lambda: r.choice(MEDS), "{pharmacy}": lambda: r.choice(PHARMACIES),
        "{test}": lambda: r.choice(TESTS), "{payer}": lambda: r.choice(PAYERS), "{day}": lambda: r.choice(DAYS),
        "{firm}": lambda: r.choice(FIRMS), "{amount}": lambda: f"${r.randint(20, 2400)}.{r.randint(0, 99):02d}",
        "{weeks}": lambda: str(r.randint(1, 6)),
    }
    for key, make in slots.items():
        while key in text:
            text = text.replace(key, make(), 1)
    return text


T: dict[str, list[str]] = {
    "referral": [
        "Referral: {name}, DOB {dob}, {condition}. Please see at your earliest convenience. {doctor}, {practice}",
        "Dear colleague, I am referring {name} ({dob}) for evaluation of {condition}. ICD-10 {icd}. "
        "Insurance: {payer}. Thank you, {doctor}",
        "New patient referral from {practice}. Pt: {name}. Reason: {condition}. Please call the pt at {phone}.",
        "Please find attached the referral and clinical notes for {name} regarding {condition}.",
        "Hi, this is the front desk at {practice}. We faxed over a referral for {name} for an ortho consult "
        "re {condition}. Can you confirm you received it?",
        "Ortho consult requested - {condition} - pt {name}, dob {dob}, ins {payer}. Urgent if possible.",
        "{doctor} would like {name} to be seen by one of your surgeons for {condition}; MRI enclosed.",
        "Referal for {name} - {condition}. Dx code {icd}. Referring: {doctor}, {practice}. Fax back pls.",
        "Could Dr. Okafor evaluate my patient {name} for {condition}? Failed {weeks} weeks of PT.",
        "My PCP {doctor} said she sent a referral for me to see an orthopedist about my {condition}. "
        "Did you get it? My name is {name}.",
        "Sending over a referral for {name}, {condition}, prior auth from {payer} pending.",
        "RE: referral - pt {name} DOB {dob} - consult for {condition} - please schedule new pt visit",
    ],
    "appointment": [
        "Hi, I need to reschedule my appointment on {day}. Can we do {day} instead? {name}",
        "Can I get an earlier appointment? My knee is getting worse. {name}, {phone}",
        "I would like to book a follow up visit with {doctor} after my surgery. Thanks, {name}",
        "Please cancel my appointment for {day}, something came up at work. {name} dob {dob}",
        "hi can i make an apointment for my shoulder, any time {day} works. call me {phone}",
        "Is there any availability {day} for a new patient visit? I was referred for {condition}.",
        "I missed my appointment this morning, sorry. How do I rebook? - {name}",
        "Need a post-op check for my mother {name}, she had surgery {weeks} weeks ago.",
        "Confirming my appt {day} at 10am with {doctor}? Also what time should I arrive",
        "Could you move my physical therapy eval to {day}? Thanks",
        "I'd like to schedule a visit about my {condition}. Mornings are best. {phone}",
        "Requesting appointment for cortisone injection follow up, {name}, DOB {dob}",
    ],
    "records": [
        "Please send a copy of my medical records to {doctor} at {practice}. Signed release attached. {name}",
        "Records request: {firm} represents {name} (DOB {dob}) in a personal injury matter. Enclosed is a "
        "HIPAA-compliant authorization. Please forward all records and imaging from the last two years.",
        "I need my {test} report and office notes sent to my new doctor. {name}",
        "This is {payer} requesting medical records for claim review for member {name}, dates of service in March.",
        "Can I get a copy of my chart for my disability application? {name}, dob {dob}",
        "Requesting complete medical records including operative report for {name}. Authorization enclosed.",
        "hi i need my records from my visits last year for my lawyer, how do i get them",
        "Subpoena duces tecum for records of {name} from {firm}; please produce within 14 days.",
        "Please fax the last office note and {test} images for {name} to {practice}.",
        "I'm moving out of state, please transfer my records to my new orthopedist. {name}",
        "Workers comp adjuster requesting treatment records for {name}, claim 88-{weeks}41.",
        "Could you email me my visit summary and the {test} results? I need them for school forms.",
    ],
    "refill": [
        "I need a refill on my {med}, I have 2 days left. Pharmacy is {pharmacy}. {name} dob {dob}",
        "Refill request: {med} for {name}. Please send to {pharmacy}.",
        "This is {pharmacy} requesting a refill authorization for {med} for patient {name}.",
        "Can {doctor} renew my prescription for {med}? Thanks, {name}",
        "hi can i get more {med}, ran out yesterday. same pharmacy as before",
        "Pharmacy says my {med} prescription expired, can you send a new one to {pharmacy}?",
        "Medication refill please: {med}, 30 day supply. {name} {phone}",
        "Requesting a refill of my pain medication ({med}) before the weekend. {name}",
        "Rx renewal needed - {med} - pt {name} - {pharmacy}",
        "My insurance now wants a 90 day supply of {med}, could you send a new script to {pharmacy}?",
        "Can I get a refil of the muscle relaxer, {med}? it really helps at night",
    ],
    "billing": [
        "I received a bill for {amount} but I thought my insurance covered this. Can someone explain? {name}",
        "Question about my statement: why was I charged {amount} for my visit on {day}?",
        "My insurance {payer} denied the claim for my PT visits. What should I do? {name}",
        "Can I set up a payment plan for the {amount} balance? {name}, {phone}",
        "This is {payer} provider relations regarding claim for {name}: missing modifier, please resubmit.",
        "I paid {amount} online but my statement still shows a balance.",
        "Need an itemized bill with CPT codes for my HSA reimbursement. {name} dob {dob}",
        "Why did I get charged a copay twice? Account for {name}.",
        "Please update my insurance to {payer} and rebill the claim from last month.",
        "Got a collections notice for {amount}, I never got a bill!! please call me {phone}",
        "Do you offer financial assistance? I can't afford the {amount} bill from my surgery.",
        "Refund request: I overpaid {amount} on my account. {name}",
    ],
    "results": [
        "Are my {test} results back yet? {name}, dob {dob}",
        "I had a {test} on {day}, when will the doctor go over the results with me?",
        "Can someone explain my {test} report? It says mild degenerative changes, what does that mean?",
        "I saw my {test} results in the portal and I'm worried, can {doctor} call me? {phone}",
        "Checking on the results of my {test} from last week. Thanks, {name}",
        "Did {doctor} look at my {test} yet? I was told someone would call within a week.",
        "What did my blood test show? I'm supposed to start the new medication.",
        "hi, any news on my {test}? nobody called me back",
        "Please send the {test} findings to me, I want to know if I need surgery. {name}",
        "My {test} report mentions a partial tear. Is that something I should be concerned about?",
        "Results question: {test} done at outside imaging center, did you receive the images? {name}",
    ],
    "oos": [
        "Do you validate parking for the garage on Elm St?",
        "Hi, I'm a sales rep for a medical supply company and would like to set up a lunch meeting.",
        "Are you hiring medical assistants? I attached my resume.",
        "What are your holiday hours?",
        "Please remove me from your mailing list.",
        "Your website contact form is broken, FYI.",
        "Can I bring my service dog to the clinic?",
        "Thank you so much to the whole team for the great care!",
        "Is the office wheelchair accessible from the back entrance?",
        "We are updating our vendor records, please complete the attached W-9 form.",
        "I'd like to leave a review for {doctor}, where do I do that?",
        "Invitation: regional orthopedic nursing conference, early bird registration closes soon.",
        "Lost and found: I think I left my umbrella in the waiting room yesterday.",
        "Do you have wifi in the waiting room?",
        "Your fax machine keeps sending us blank pages, please check it.",
        "Congratulations on your new building, when is the open house?",
        "We'd like to offer your practice a free trial of our scheduling software.",
        "Is there a cafeteria nearby where I can eat while waiting?",
        "Can you recommend a good dentist in the area?",
        "Unsubscribe",
        "I'm a student writing a paper on healthcare, can I interview one of your nurses?",
        "The elevator in your building is out of order again.",
        "Out of office: I will be away until Monday with limited access to email.",
        "Does the practice have a volunteer program for high school students?",
        "What is the address for the new satellite office?",
        "Your invoice from the cleaning service is attached, payment due in 30 days.",
        "Can I donate my old crutches to you?",
        "Who do I talk to about a media interview with {doctor}?",
        "Is there a covid mask policy in the office?",
    ],
}

GREETINGS = ["", "", "Hello, ", "Hi there, ", "Good morning, ", "To whom it may concern: ", "Dear office staff, ",
             "hey ", "Hello team, "]
SIGNOFFS = ["", "", " Thanks!", " Thank you.", " Best regards.", " Sent from my iPhone", " Regards, front desk.",
            " Please advise.", " thx"]
NOISE = ["", "", "", " -----Original Message----- From: noreply@portal.example", " [EXTERNAL EMAIL]",
         " CONFIDENTIALITY NOTICE: this message may contain protected health information."]


def typo(r: random.Random, text: str) -> str:
    words = text.split()
    for _ in range(r.choice([0, 0, 1, 2])):
        i = r.randrange(len(words))
        w = words[i]
        if len(w) > 4:
            j = r.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if r.random() < 0.5 else w[:j] + w[j + 1:]
    text = " ".join(words)
    return text.lower() if r.random() < 0.08 else text


def make_row(r: random.Random, label: str, templates: list[str], clean: bool = False) -> dict[str, str]:
    body = fill(r, r.choice(templates))
    if clean:  # short, single utterances, as public intent sets have them
        return {"text": body.split(". ")[0].strip(), "label": label}
    text = r.choice(GREETINGS) + typo(r, body) + r.choice(SIGNOFFS) + r.choice(NOISE)
    return {"text": text.strip(), "label": label}


def main(per_type: int = 130, oos: int = 150, seed: int = 20240601, shape: str = "mail") -> None:
    """`mail`: requests_{train,test}.csv. `clean`: requests_clean_{train,test}.csv, a second,
    differently shaped split: no greetings, sign-offs or footers, one sentence each, the FIRST
    three templates of each type (and of oos) held out, another seed."""
    clean = shape == "clean"
    r = random.Random(seed + 1 if clean else seed)
    train: list[dict[str, str]] = []
    test: list[dict[str, str]] = []
    for label, templates in T.items():
        # Three templates of each type appear only in the test file, so the test measures
        # phrasing the classifier has never seen, not template recall.
        seen, unseen = (templates[3:], templates[:3]) if clean else (templates[:-3], templates)
        count = oos if label == "oos" else per_type
        train += [make_row(r, label, seen, clean) for _ in range(count // 2)]
        test += [make_row(r, label, unseen, clean) for _ in range(count - count // 2)]
    r.shuffle(train)
    r.shuffle(test)
    prefix = "requests_clean" if clean else "requests"
    for fname, part in ((f"{prefix}_train.csv", train), (f"{prefix}_test.csv", test)):
        with (HERE / fname).open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(part)
    print(f"wrote {len(train)} train and {len(test)} test rows")


if __name__ == "__main__":
    import sys

    main(shape=sys.argv[1] if len(sys.argv) > 1 else "mail")
