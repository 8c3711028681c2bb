-- luacheck configuration: `luacheck lua spec scripts`.
std = "lua54"
max_line_length = 80
files["spec"] = {std = "+busted", globals = {"aio"}}
files["scripts"] = {globals = {"aio"}}
