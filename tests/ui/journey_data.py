"""What the platform would answer for the UI tests' citizen (the driver stands in for it)."""
from __future__ import annotations

BENEFITS = [{"id": "b1", "title": {"zh-CN": "高龄津贴", "en": "Old-age allowance"},
             "reason": {"zh-CN": "年满80周岁", "en": "Aged 80 or over"}, "status": "granted_automatically"},
            {"id": "b2", "title": {"zh-CN": "养老服务补贴", "en": "Elderly care subsidy"},
             "reason": {"zh-CN": "符合条件", "en": "You meet the conditions"}, "status": "eligible",
             "item_id": "elderly-allowance"}]
APPLICATIONS = [{"receipt_number": "SQ20261101000007", "title": {"zh-CN": "新生儿出生一件事", "en": "Birth of a child"},
                 "status": "in_progress", "accepted_at": "2026-11-01T09:00:00Z"}]
LICENCES = [{"type": "birth_certificate", "number": "N110000001",
             "title": {"zh-CN": "出生医学证明", "en": "Medical birth certificate"}},
            {"type": "household_register", "number": "H1100000001"}]
# the newborn form's answers the state does not hold (besides the relation and the phone)
NEWBORN_ANSWERS = {"marital_status": "20", "baby_name": "王小宝", "baby_gender": "2", "baby_birth_date": "2026-11-20",
                   "birth_certificate_number": "N110000001", "registration_address": "北京市东城区测试路2号"}
