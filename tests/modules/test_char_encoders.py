import pytest
import torch

from seqtag.modules.char_encoders import CharCNN, CharLSTM
from seqtag.modules.dropout import Dropout


@pytest.mark.parametrize("width", [2, 3, 4, 5])
def test_char_cnn_equals_the_convolution_it_replaces(width):
    torch.manual_seed(width)
    cnn = CharCNN(20, char_dim=6, filters=5, kernel_size=width, dropout=0.0).eval()
    chars = torch.randint(1, 20, (7, 9))
    chars[2, 4:] = 0
    chars[5, 1:] = 0
    reference = cnn.conv(cnn.embedding(chars).transpose(1, 2))[:, :, :9]  # (U, filters, L)
    reference = reference.masked_fill(chars.eq(0).unsqueeze(1), float("-inf")).max(dim=2).values
    torch.testing.assert_close(cnn(chars), reference)


def test_char_lstm_shape_ignores_padding():
    torch.manual_seed(0)
    encoder = CharLSTM(10, char_dim=4, hidden_size=3).eval()
    chars = torch.tensor([[1, 2, 3, 0, 0], [1, 2, 3, 4, 5]])
    out = encoder(chars)
    assert out.shape == (2, 6)
    torch.testing.assert_close(out[0], encoder(torch.tensor([[1, 2, 3]]))[0])


def test_dropout_scales_and_is_identity_in_eval():
    torch.manual_seed(0)
    dropout = Dropout(0.25)
    x = torch.ones(10_000)
    y = dropout(x)
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1.0 / 0.75))
    assert abs(float((y == 0).float().mean()) - 0.25) < 0.02
    assert torch.equal(dropout.eval()(x), x)
