"""The demo site: the bank of Kentico's custom activity example, tracked with waypost.js.

``waypost demo`` serves it beside a running Waypost API; ``waypost serve --demo`` serves both.
"""

from waypost.demo.data import DemoSetup, prepare_demo
from waypost.demo.site import create_demo_app

__all__ = ["DemoSetup", "create_demo_app", "prepare_demo"]
