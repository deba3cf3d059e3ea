"""One HTTP client for the tests' one-off calls (``http.get(url, headers=...)`` like ``httpx.get``).

Each ``httpx.get`` or ``httpx.Client()`` reads the whole CA bundle into an SSL context of its own,
even for plain HTTP to 127.0.0.1: about 20 ms of CPU, a third of a second on a loaded machine, and
helpers that call the API a hundred times per test file add up. This client is made once; it keeps
no cookies, so nothing one call was given goes along with the next (each brings its own headers).
"""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

http = httpx.Client(cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])))
