-- aio.pg against a real PostgreSQL 15 (spec/pg.cmake): connecting over TCP
-- and a Unix socket, the query methods, parameters, errors and their
-- fields, per-call timeouts, a server that never answers.
local aio = require "luaio"
local S = require "support"
local P = require "pg_support"
local run = S.run
local describe = P.skippable(describe, pending)

describe("aio.pg connections", function()
  it("connects over TCP (a host name) and over the Unix socket", function()
    run(function()
      local c <close> = aio.pg.connect(P.dsn())
      assert.equal(1, c:fetchval("select 1"))
      assert.is_true(c:fetchval("select inet_server_addr() is not null"))
      local u <close> = aio.pg.connect(P.unix_dsn())
      assert.is_true(u:fetchval("select inet_server_addr() is null"))
      assert.is_number(u:pid())
      assert.not_equal(c:pid(), u:pid())
    end)
  end)

  it("a refused connection is a ConnectionError", function()
    run(function()
      local srv = aio.start_server(function() end, "127.0.0.1", 0)
      local port = srv.port
      srv:close()
      local e = S.assert_raises("ConnectionError", aio.pg.connect,
        ("host=127.0.0.1 port=%d user=postgres"):format(port))
      assert.matches("refused", e.message)
      e = S.assert_raises("ConnectionError", aio.pg.connect,
        ("host=no-such-host.invalid port=%d"):format(port))
      assert.matches("no%-such%-host", e.message)
      e = S.assert_raises("ConnectionError", aio.pg.connect,
        ("host=%s port=%d user=postgres dbname=nosuchdb")
        :format(P.dir, P.port()))
      assert.matches("nosuchdb", e.message)
    end)
  end)

  it("a bad DSN or option raises at once", function()
    run(function()
      assert.has_error(function() aio.pg.connect("host=") end)
      assert.has_error(function() aio.pg.connect("nonsense") end)
      assert.has_error(function() aio.pg.connect(42) end)
      assert.has_error(function() aio.pg.connect(P.dsn(), {bogus = 1}) end)
    end)
  end)

  it("a server that accepts but never answers: connect times out",
     function()
    run(function()
      local held = {}
      local srv = aio.start_server(function(s)
        held[#held + 1] = s
        aio.sleep(30)
      end, "127.0.0.1", 0)
      local dsn = ("host=127.0.0.1 port=%d user=postgres sslmode=disable")
                  :format(srv.port)
      S.assert_raises("TimeoutError", aio.pg.connect, dsn, {timeout = 0.2})
      -- and a cancelled connect leaves nothing behind
      local t = aio.spawn(aio.pg.connect, dsn)
      aio.sleep(0.05)
      t:cancel()
      S.assert_cancelled(t)
      srv:close()
    end)
  end)

  it("a closed connection raises when used; closing twice is harmless",
     function()
    run(function()
      local c = aio.pg.connect(P.dsn())
      c:close()
      c:close()
      assert.has_error(function() c:fetch("select 1") end,
                       "attempt to use a closed connection")
      assert.is_false(c:alive())
    end)
  end)
end)

describe("aio.pg queries", function()
  it("fetch, fetchrow, fetchval, execute", function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      c:execute("create temp table t (id int primary key, name text)")
      assert.equal(1, c:execute("insert into t values ($1, $2)", 1, "one"))
      assert.equal(1, c:execute("insert into t values ($1, $2)", 2, "two"))
      assert.same({{id = 1, name = "one"}, {id = 2, name = "two"}},
                  c:fetch("select * from t order by id"))
      assert.same({id = 2, name = "two"},
                  c:fetchrow("select * from t where id = $1", 2))
      assert.is_nil(c:fetchrow("select * from t where id = $1", 3))
      assert.equal("one", c:fetchval("select name from t where id = $1", 1))
      assert.is_nil(c:fetchval("select name from t where id = 3"))
      assert.same({}, c:fetch("select * from t where false"))
      assert.equal(2, c:execute("update t set name = upper(name)"))
      assert.equal(2, c:execute("delete from t"))
    end)
  end)

  it("injection attempts stay data", function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      c:execute("create temp table u (name text)")
      local evil = "x'); drop table u; --"
      c:execute("insert into u values ($1)", evil)
      assert.equal(evil, c:fetchval("select name from u"))
      assert.equal(1, c:fetchval("select count(*) from u"))
      assert.equal(0, c:fetchval("select count(*) from u where name = $1",
                                 "' or '1'='1"))
    end)
  end)

  it("errors carry the server's fields; the connection goes on",
     function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      c:execute_script([[
        create temp table p (id int primary key);
        create temp table ch (pid int references p(id),
                              v int not null check (v > 0));
        insert into p values (1);
      ]])
      local e = S.assert_raises("DatabaseError", c.execute, c,
                                "insert into p values (1)")
      assert.equal("23505", e.sqlstate)
      assert.equal("p_pkey", e.constraint)
      assert.equal("p", e.table)
      assert.matches("already exists", e.detail)
      assert.equal("ERROR", e.severity)
      e = S.assert_raises("DatabaseError", c.execute, c,
                          "insert into ch values (1, null)")
      assert.equal("23502", e.sqlstate)
      assert.equal("v", e.column)
      e = S.assert_raises("DatabaseError", c.execute, c,
                          "insert into ch values (1, -1)")
      assert.equal("23514", e.sqlstate)
      assert.equal("ch_v_check", e.constraint)
      e = S.assert_raises("DatabaseError", c.fetch, c, "selec 1")
      assert.equal("42601", e.sqlstate)
      assert.equal(1, e.position)
      e = S.assert_raises("DatabaseError", c.fetch, c,
        "select 1 from nosuch")
      assert.equal("42P01", e.sqlstate)
      e = S.assert_raises("DatabaseError", c.fetchval, c,
        "do $$ begin raise exception 'mine' using hint = 'h1', "
        .. "detail = 'd1', errcode = 'P0042'; end $$")
      assert.equal("P0042", e.sqlstate)
      assert.equal("h1", e.hint)
      assert.equal("d1", e.detail)
      assert.equal("mine", e.message)
      assert.matches("DatabaseError: mine", tostring(e))
      assert.equal(1, c:fetchval("select 1"))
    end)
  end)

  it("wrong parameters raise before anything is sent", function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      assert.has_error(function() c:fetchval("select $1::int") end)
      assert.has_error(function() c:fetchval("select $1::int", 1, 2) end)
      assert.has_error(function() c:fetchval("select $1::text", print) end)
      assert.has_error(function() c:fetchval("select $1::text", "a\0b") end)
      assert.has_error(function() c:fetchval(42) end)
      assert.equal(2, c:fetchval("select $1::int", 2))
    end)
  end)

  it("execute_script runs several statements", function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      c:execute_script([[
        create temp table m (a int);
        insert into m values (1), (2);
        insert into m values (3);
      ]])
      assert.equal(3, c:fetchval("select count(*) from m"))
      local e = S.assert_raises("DatabaseError", c.execute_script, c,
        "insert into m values (4); select 1/0; insert into m values (5)")
      assert.equal("22012", e.sqlstate)
      assert.equal(3, c:fetchval("select count(*) from m"))
    end)
  end)

  it("executemany: one pipeline; an error stops the batch", function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      c:execute("create temp table e (a int primary key, b text)")
      local list = {}
      for i = 1, S.MANY do list[i] = {i, "v" .. i} end
      assert.equal(S.MANY, c:executemany("insert into e values ($1, $2)",
                                         list))
      assert.equal(S.MANY, c:fetchval("select count(*) from e"))
      assert.equal(0, c:executemany("insert into e values ($1, $2)", {}))
      local e = S.assert_raises("DatabaseError", c.executemany, c,
        "insert into e values ($1, $2)", {{-1, "x"}, {1, "dup"}, {-2, "y"}})
      assert.equal("23505", e.sqlstate)
      assert.equal(S.MANY, c:fetchval("select count(*) from e")) -- atomic
      assert.has_error(function()
        c:executemany("insert into e values ($1, $2)", {{1}})
      end)
      assert.has_error(function()
        c:executemany("insert into e values ($1, $2)", {{1, "a"}, 5})
      end)
      assert.equal(S.MANY, c:fetchval("select count(*) from e")) -- atomic
    end)
  end)

  it("two tasks on one connection: the second raises", function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      local t = aio.spawn(c.fetchval, c, "select pg_sleep(0.2)")
      aio.sleep(0.05)
      assert.has_error(function() c:fetchval("select 1") end,
        "another operation is in progress on this connection")
      t:await()
      assert.equal(1, c:fetchval("select 1"))
    end)
  end)

  it("a per-call timeout raises TimeoutError and the connection answers",
     function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      S.assert_raises("TimeoutError", c.fetchval, c,
                      {"select pg_sleep(10)", timeout = 0.1})
      assert.equal(7, c:fetchval({"select $1::int", timeout = 5}, 7))
      local d <close> = aio.pg.connect(P.unix_dsn(),
                                       {command_timeout = 0.1})
      S.assert_raises("TimeoutError", d.execute, d, "select pg_sleep(10)")
      assert.equal(1, d:fetchval("select 1"))
    end)
  end)

  it("the statement cache keeps 100 and re-prepares what the server lost",
     function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      for i = 1, 150 do
        assert.equal(i, c:fetchval("select " .. i .. "::int"))
      end
      assert.equal(100, c:fetchval(
        "select count(*)::int from pg_prepared_statements"))
      c:execute_script("deallocate all")
      assert.equal(150, c:fetchval("select 150::int"))
      c:execute("create temp table s (a int)")
      c:execute("insert into s values (1)")
      assert.same({{a = 1}}, c:fetch("select * from s"))
      c:execute_script("alter table s add column b int")
      assert.same({{a = 1, b = aio.null}}, c:fetch("select * from s"))
    end)
  end)
end)

describe("aio.pg LISTEN", function()
  it("notifications arrive with channel, payload, pid", function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      local n <close> = aio.pg.connect(P.unix_dsn())
      local l <close> = c:listen("chan one")
      n:execute("select pg_notify($1, $2)", "chan one", "hello")
      local got = l:next()
      assert.same({channel = "chan one", payload = "hello", pid = n:pid()},
                  got)
      -- queries go on while listening
      assert.equal(1, c:fetchval("select 1"))
      n:execute("select pg_notify('chan one', 'again')")
      assert.equal("again", l:next().payload)
    end)
  end)

  it("a slow consumer: reading pauses, nothing is lost", function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      local n <close> = aio.pg.connect(P.unix_dsn())
      local l <close> = c:listen("flood")
      local total = 3000
      n:execute("select pg_notify('flood', g::text) "
                .. "from generate_series(1, $1) g", total)
      aio.sleep(0.2)
      local i = 0
      for m in l:iter() do
        i = i + 1
        assert.equal(tostring(i), m.payload)
        if i % 500 == 0 then aio.sleep(0.01) end
        if i == total then break end
      end
      assert.equal(total, i)
    end)
  end)

  it("closing the listener unlistens; a cancelled reader leaves it usable",
     function()
    run(function()
      local c <close> = aio.pg.connect(P.unix_dsn())
      local l = c:listen("x")
      local t = aio.spawn(l.next, l)
      aio.sleep(0.05)
      t:cancel()
      S.assert_cancelled(t)
      l:close()
      l:close()
      assert.is_nil(l:next())
      assert.same({}, c:fetch("select * from pg_listening_channels()"))
    end)
  end)
end)
