"""Screenshots made for the tests, the evaluation and the benchmark, never collected from people.

Pages that look like CHSI's registration form with each of its two ID messages, and like its
password-recovery page, filled with made-up names and ID numbers, are rendered in headless
Chromium at a phone's size (390 × 844 CSS pixels, 3× density: 1170 × 2532 pixels, as an iPhone
takes them). Each also comes "photographed": scaled down, turned a few degrees, JPEG-compressed.
"""

import concurrent.futures
import html
import io
import shutil
from dataclasses import dataclass

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PHONE_WIDTH, PHONE_HEIGHT = 390, 844

# Made-up people: the ID numbers are valid (check character included) so that the masker must
# find them; nobody has them.
PEOPLE = [("王小明", "11010519491231002X"), ("李雨桐", "440305200103154525")]

STYLE = """
body { font-family: "WenQuanYi Micro Hei", sans-serif; margin: 0; background: #f5f5f5; }
.top { background: #0b5aa2; color: #fff; padding: 14px 16px; font-size: 18px; }
.box { background: #fff; margin: 12px; padding: 12px 14px; border-radius: 6px; }
.row { padding: 10px 0; border-bottom: 1px solid #eee; font-size: 15px; color: #333; }
.label { color: #666; display: inline-block; width: 84px; }
.error { color: #d9001b; font-size: 14px; margin-top: 6px; }
.tip { color: #555; font-size: 13px; line-height: 1.7; }
.button { background: #0b5aa2; color: #fff; text-align: center; padding: 10px; border-radius: 4px;
          margin-top: 14px; }
a { color: #0b5aa2; }
"""


def registration_page(name: str, id_number: str, message: str, tips: str) -> str:
    return f"""<!doctype html><meta charset="utf-8"><style>{STYLE}</style>
<div class="top">学信网 · 用户注册</div>
<div class="box">
<div class="row"><span class="label">手机号码 *</span>139****2468</div>
<div class="row"><span class="label">短信验证码 *</span>426815</div>
<div class="row"><span class="label">密码 *</span>••••••••</div>
<div class="row"><span class="label">姓名 *</span>{html.escape(name)}</div>
<div class="row"><span class="label">证件类型 *</span>居民身份证</div>
<div class="row"><span class="label">证件号码 *</span>{html.escape(id_number)}
<div class="error">{html.escape(message)}</div></div>
<div class="tip">{tips}</div>
<div class="button">立即注册</div>
</div>"""


PENDING_TIPS = (
    "友情提示：请用原注册账号登录系统,并及时上传身份证审核材料<br>"
    "1. 本网站核对无误后将在三个工作日内处理完毕,请及时登录网站查看<br>"
    "2. 如果您忘记了注册信息,可以尝试 <a>找回密码</a>、<a>找回用户名</a>"
)
REGISTERED_TIPS = '<label><input type="checkbox"> 我要重新注册</label>'

PASSWORD_PAGE = f"""<!doctype html><meta charset="utf-8"><style>{STYLE}</style>
<div class="top">学信网 · 找回密码</div>
<div class="box">
<div class="row">忘记密码了？请选择找回密码的方式</div>
<div class="row">通过手机号找回密码</div>
<div class="row"><span class="label">手机号 *</span>请输入注册时的手机号</div>
<div class="row"><span class="label">验证码 *</span>获取短信验证码</div>
<div class="button">下一步</div>
<div class="tip">手机号已不再使用？可以通过 <a>安全邮箱找回</a> 或 <a>密保问题找回</a></div>
</div>"""


@dataclass(frozen=True)
class Screenshot:
    """One picture and what it should be read as."""

    name: str
    data: bytes
    intent: str  # the intent the assistant should take it for
    shows: str  # a phrase the reading must contain
    id_number: str = ""  # the made-up ID number in the picture, which must never be stored


def pages() -> list[tuple[str, str, str, str, str]]:
    """(name, html, intent, phrase, ID number) of each page."""
    (name1, id1), (name2, id2) = PEOPLE
    return [
        (
            "registered",
            registration_page(name1, id1, "证件号码已被注册，查看【解决方法】", REGISTERED_TIPS),
            "error_already_registered",
            "证件号码已被注册",
            id1,
        ),
        (
            "pending",
            registration_page(
                name2, id2, "证件号码重复待审核,不能再次注册此证件号码", PENDING_TIPS
            ),
            "error_pending_review",
            "证件号码重复待审核",
            id2,
        ),
        ("password", PASSWORD_PAGE, "forgot_password", "找回密码", ""),
    ]


def photographed(png: bytes, scale: float = 0.7, angle: float = 3.0, quality: int = 55) -> bytes:
    """The screenshot as a phone photo of a screen might look: smaller, turned, compressed."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        picture = image.convert("RGB")
    picture = picture.resize((int(picture.width * scale), int(picture.height * scale)))
    picture = picture.rotate(angle, expand=True, fillcolor=(235, 235, 235))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


def render() -> list[Screenshot]:
    """Every page as a phone screenshot (PNG) and photographed (JPEG), rendered in Chromium.

    In a thread of its own: Playwright's sync API refuses to run where another sync session (a
    test's browser) already runs its event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(_render).result()


def _render() -> list[Screenshot]:
    from playwright.sync_api import sync_playwright

    shots: list[Screenshot] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = chromium.new_page(
                viewport={"width": PHONE_WIDTH, "height": PHONE_HEIGHT}, device_scale_factor=3
            )
            for name, markup, intent, phrase, id_number in pages():
                page.set_content(markup)
                png = page.screenshot(full_page=False)
                shots.append(Screenshot(f"{name}.png", png, intent, phrase, id_number))
                shots.append(
                    Screenshot(f"{name}-photo.jpg", photographed(png), intent, phrase, id_number)
                )
        finally:
            chromium.close()
    return shots
