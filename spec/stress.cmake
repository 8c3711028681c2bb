# The cancellation storm (spec/stress/storm.lua): seeded random cancels and
# full collections over every kind of wait.  Three seeds from the clock each
# run, so runs explore new schedules; a failing seed is printed and can be
# replayed with `luaio spec/stress/storm.lua SEED`.  In the ASan tree
# (.ci/run's host: stage) LeakSanitizer checks the exit.
add_test(NAME host:stress COMMAND ${CMAKE_COMMAND} -E env STORM_ROUNDS=1000
  $<TARGET_FILE:luaio> ${CMAKE_SOURCE_DIR}/spec/stress/storm.lua)
set_tests_properties(host:stress PROPERTIES TIMEOUT 300
  PASS_REGULAR_EXPRESSION "storm passed: 3 seeds"
  FAIL_REGULAR_EXPRESSION "FAILED|Sanitizer|runtime error")
