"""An agent without tools, for `sfagent batch --via batch-api` tests."""

from sfagent import Agent

agent = Agent("Qwen/Qwen2.5-7B-Instruct", instructions="Answer in one sentence.", api_key="sk-test")
