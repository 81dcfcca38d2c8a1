"""Conversations the load generator plays: multi-turn exchanges from the assistant's flows,
written the way students type (not copied from the training data)."""

FLOWS: list[list[str]] = [
    # forgotten password, self-service failed, handed off
    ["你好", "学信网密码想不起来了", "/self_service_failed", "好的，谢谢"],
    # forgotten username, found it
    ["用户名忘了咋办", "/affirm", "拜拜"],
    # duplicate ID, already registered, never registered, graduate
    ["注册的时候显示身份证号已经被注册了", "2", "我没注册过啊", "我毕业两年了", "谢谢"],
    # pending review pasted, a question in the middle, registered before
    ["证件号码重复待审核，不能再次注册此证件号码", "审核要多长时间", "以前注册过", "好的"],
    # current student, both problems, then a human
    ["我是在校大学生", "用户名和密码都忘了", "还是不行", "转人工"],
    # verification questions
    ["身份核验怎么弄", "途径3需要填什么", "我还在读书", "重新注册对旧账号有什么影响"],
    # unrelated, vague and misunderstood
    ["今天天气怎么样", "账号的事", "忘记密码了", "/affirm"],
]
