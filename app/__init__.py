"""BlockZoo HTTP service: FastAPI app, persistence and job orchestration around ``blockzoo``."""
