"""Everything that turns a case into an answer, one subpackage per role; imports run one way
(cli -> api -> report -> studies -> export -> engines -> cost, serving -> problem -> case)."""
