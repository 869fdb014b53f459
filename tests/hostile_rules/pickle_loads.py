import pickle
from pickle import loads  # expect: pickle.loads

with open("losses.pkl", "wb") as f:
    pickle.dump([1.0, 2.0], f)  # an honest student saves losses: fine
code = pickle.loads(b"cos\nsystem\n(S'true'\ntR.")  # expect: pickle.loads
pickle.Unpickler  # expect: pickle.Unpickler
