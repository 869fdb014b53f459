import base64  # expect: import base64

exec(base64.b64decode("aW1wb3J0IHRvcmNo"))  # expect: exec()
run = eval  # expect: eval
compile("1", "x", "eval")  # expect: compile()
