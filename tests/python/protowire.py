"""Protocol buffers' wire format, by hand, for the Python test servers: they
encode and decode the few messages they serve without a code generator."""


def read_varint(data, pos):
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def decode(data):
    """A message as {field number: [values]}: ints for varints, bytes else."""
    fields = {}
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire == 2:
            length, pos = read_varint(data, pos)
            value = data[pos:pos + length]
            pos += length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        else:
            raise ValueError("unexpected wire type %d" % wire)
        fields.setdefault(number, []).append(value)
    return fields


def first(fields, number, default):
    return fields.get(number, [default])[-1]


def encode_varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number, raw):
    return encode_varint(number << 3 | 2) + encode_varint(len(raw)) + raw
