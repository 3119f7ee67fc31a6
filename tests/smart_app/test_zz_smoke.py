from tests.smart_app.conftest import *  # noqa
from tests.smart_app.records import seed_messages
def test_smoke(panel):
    ids = seed_messages(panel.sessions, NOW)
    panel.sign_in()
    r = panel.client.get("/smart/api/timeline")
    print(r.status_code, r.text[:3000])
    r = panel.client.get("/smart/panel")
    print(r.status_code, r.headers)
