//! Screenshot images: hypervisors deliver PNG or PPM; the API always
//! answers PNG.

use crate::error::Error;

/// Turns a PPM (P6) image into PNG; other formats pass through unchanged.
pub fn to_png(data: Vec<u8>, mime: &str) -> Result<Vec<u8>, Error> {
    if mime == "image/png" {
        return Ok(data);
    }
    if mime != "image/x-portable-pixmap" {
        return Err(Error::Unimplemented(format!(
            "the hypervisor sent a screenshot as {mime}, which the server cannot convert to PNG"
        )));
    }
    let (w, h, pixels) = parse_ppm(&data)
        .ok_or_else(|| Error::internal("the hypervisor sent a malformed PPM screenshot"))?;
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .map_err(|e| Error::internal_from("cannot encode PNG", e))?;
    writer
        .write_image_data(pixels)
        .map_err(|e| Error::internal_from("cannot encode PNG", e))?;
    writer
        .finish()
        .map_err(|e| Error::internal_from("cannot encode PNG", e))?;
    Ok(out)
}

/// Parses a binary PPM with maxval 255: returns width, height and RGB bytes.
fn parse_ppm(data: &[u8]) -> Option<(u32, u32, &[u8])> {
    let mut pos = 0;
    let mut fields = Vec::new();
    while fields.len() < 4 {
        while pos < data.len() && data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if data.get(pos) == Some(&b'#') {
            while pos < data.len() && data[pos] != b'\n' {
                pos += 1;
            }
            continue;
        }
        let start = pos;
        while pos < data.len() && !data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if start == pos {
            return None;
        }
        fields.push(std::str::from_utf8(&data[start..pos]).ok()?);
    }
    pos += 1; // the single whitespace after maxval
    if fields[0] != "P6" || fields[3] != "255" {
        return None;
    }
    let w: u32 = fields[1].parse().ok()?;
    let h: u32 = fields[2].parse().ok()?;
    let len = (w as usize).checked_mul(h as usize)?.checked_mul(3)?;
    let pixels = data.get(pos..pos.checked_add(len)?)?;
    Some((w, h, pixels))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ppm_to_png() {
        let mut ppm = b"P6\n# comment\n2 1\n255\n".to_vec();
        ppm.extend_from_slice(&[255, 0, 0, 0, 255, 0]);
        let png = to_png(ppm, "image/x-portable-pixmap").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(to_png(b"P6 1 1 255 ".to_vec(), "image/x-portable-pixmap").is_err());
    }
}
