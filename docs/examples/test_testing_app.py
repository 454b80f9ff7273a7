import unittest

import pytest
from testing_app import create_app
from flask_connect_session.testing import CountingStore, install_store, session_headers


@pytest.fixture
def app():
    app = create_app()
    app.config["TESTING"] = True
    return app


def test_counter(app):
    client = app.test_client()
    assert client.get("/").text == "1 views"
    assert client.get("/").text == "2 views"


def test_dashboard_with_a_session_transaction(app):
    client = app.test_client()
    assert client.get("/dashboard").status_code == 401
    with client.session_transaction() as session:
        session["user"] = "ann"
    assert client.get("/dashboard").status_code == 200


def test_me(app):
    client = app.test_client()
    headers = session_headers(client, {"user": "ann"})
    assert client.get("/api/me", headers=headers).json == {"user": "ann"}
    assert client.get_cookie("connect.sid") is None


def test_dashboard(app, connect_session_server):
    client = app.test_client()
    connect_session_server.set(client, {"user": "ann"})
    client.get("/dashboard")
    assert connect_session_server.get(client) == {"user": "ann", "visits": 1}
    assert connect_session_server.id(client) is not None


def test_static_page_costs_no_store_call(app, connect_session_counting_store):
    store = connect_session_counting_store(app)
    app.test_client().get("/about")
    assert store.calls == []


def test_read_only_page_is_one_round_trip(app, connect_session_counting_store):
    client = app.test_client()
    client.get("/login-as-ann")
    store = connect_session_counting_store(app)
    client.get("/profile")
    assert sum(store.counts.values()) == 1


def test_first_visit(app, connect_session_memory_store):
    store = connect_session_memory_store(app)
    app.test_client().get("/")
    assert store.length() == 1


class StoreCallsTest(unittest.TestCase):  # any test runner: no pytest needed
    def setUp(self):
        self.app = create_app()
        self.store = CountingStore(self.app.session_interface.store)
        self.previous = install_store(self.app, self.store)

    def tearDown(self):
        self.app.session_interface = self.previous

    def test_static_page_costs_no_store_call(self):
        self.app.test_client().get("/about")
        self.assertEqual(self.store.calls, [])
