//! A pickup token as a QR code in a PNG: black modules on white, 8 pixels each, with the four
//! modules of quiet zone a phone's reader needs. The kiosk reads it from a phone screen.

/// Pixels per module.
const SCALE: usize = 8;
/// Modules of white around the code.
const QUIET: usize = 4;

/// The PNG of `token`'s QR code (error correction M, the default).
pub fn png(token: &str) -> Result<Vec<u8>, String> {
    let code = qrcode::QrCode::new(token.as_bytes()).map_err(|e| e.to_string())?;
    let modules = code.width();
    let dark = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in dark.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            let row = &mut pixels[y * side..(y + 1) * side];
            row[mx * SCALE..(mx + 1) * SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// Read back with rqrr, a decoder we did not write.
    #[test]
    fn the_png_decodes_to_the_token() {
        let token = "LH1Q7T2X9KABCDEFGH";
        let bytes = super::png(token).expect("a png");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("png frame");
        let (w, h) = (info.width as usize, info.height as usize);
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, content) = grids[0].decode().expect("decodes");
        assert_eq!(content, token);
    }
}
