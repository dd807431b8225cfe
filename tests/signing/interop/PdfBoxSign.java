// Signs a PDF with Apache PDFBox 2 (Debian libpdfbox2-java) and BouncyCastle, as an
// interoperability producer for tests/signing/test_interop.py.
//
// usage: java PdfBoxSign IN OUT P12 PASSWORD NAME SUBFILTER [DOCMDP_P]
//   NAME: the signer's /Name; SUBFILTER: adbe.pkcs7.detached | ETSI.CAdES.detached
//   DOCMDP_P:  1, 2 or 3 makes a certification signature (ISO 32000-2 §12.8.2.2)
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Security;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import java.util.Calendar;
import java.util.Enumeration;

import org.apache.pdfbox.cos.COSArray;
import org.apache.pdfbox.cos.COSDictionary;
import org.apache.pdfbox.cos.COSName;
import org.apache.pdfbox.pdmodel.PDDocument;
import org.apache.pdfbox.pdmodel.interactive.digitalsignature.PDSignature;
import org.apache.pdfbox.pdmodel.interactive.digitalsignature.SignatureInterface;
import org.apache.pdfbox.pdmodel.interactive.digitalsignature.SignatureOptions;
import org.bouncycastle.cert.jcajce.JcaCertStore;
import org.bouncycastle.cms.CMSProcessableByteArray;
import org.bouncycastle.cms.CMSSignedData;
import org.bouncycastle.cms.CMSSignedDataGenerator;
import org.bouncycastle.cms.jcajce.JcaSignerInfoGeneratorBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;

public final class PdfBoxSign implements SignatureInterface {
    private final PrivateKey key;
    private final Certificate[] chain;

    private PdfBoxSign(PrivateKey key, Certificate[] chain) {
        this.key = key;
        this.chain = chain;
    }

    @Override
    public byte[] sign(InputStream content) throws java.io.IOException {
        try {
            CMSSignedDataGenerator gen = new CMSSignedDataGenerator();
            X509Certificate cert = (X509Certificate) chain[0];
            String alg = key.getAlgorithm().equals("EC") ? "SHA256withECDSA" : "SHA256withRSA";
            ContentSigner signer = new JcaContentSignerBuilder(alg).build(key);
            gen.addSignerInfoGenerator(new JcaSignerInfoGeneratorBuilder(
                new JcaDigestCalculatorProviderBuilder().build()).build(signer, cert));
            gen.addCertificates(new JcaCertStore(Arrays.asList(chain)));
            CMSSignedData data = gen.generate(new CMSProcessableByteArray(content.readAllBytes()), false);
            return data.getEncoded();
        } catch (Exception e) {
            throw new java.io.IOException(e);
        }
    }

    /** PDFBox example SigUtils.setMDPPermission: a DocMDP transform in /Reference and /Perms. */
    private static void certify(PDDocument doc, PDSignature signature, int p) {
        COSDictionary sigDict = signature.getCOSObject();
        COSDictionary params = new COSDictionary();
        params.setItem(COSName.TYPE, COSName.getPDFName("TransformParams"));
        params.setInt(COSName.P, p);
        params.setName(COSName.V, "1.2");
        params.setNeedToBeUpdated(true);
        COSDictionary ref = new COSDictionary();
        ref.setItem(COSName.TYPE, COSName.getPDFName("SigRef"));
        ref.setItem("TransformMethod", COSName.DOCMDP);
        ref.setItem("DigestMethod", COSName.getPDFName("SHA1"));
        ref.setItem("TransformParams", params);
        ref.setNeedToBeUpdated(true);
        COSArray refs = new COSArray();
        refs.add(ref);
        refs.setNeedToBeUpdated(true);
        sigDict.setItem("Reference", refs);
        COSDictionary perms = new COSDictionary();
        perms.setItem(COSName.DOCMDP, signature);
        perms.setNeedToBeUpdated(true);
        COSDictionary catalog = doc.getDocumentCatalog().getCOSObject();
        catalog.setItem(COSName.PERMS, perms);
        catalog.setNeedToBeUpdated(true);
    }

    public static void main(String[] args) throws Exception {
        Security.addProvider(new BouncyCastleProvider());
        KeyStore ks = KeyStore.getInstance("PKCS12");
        char[] pass = args[3].toCharArray();
        try (FileInputStream in = new FileInputStream(args[2])) {
            ks.load(in, pass);
        }
        String alias = null;
        for (Enumeration<String> e = ks.aliases(); e.hasMoreElements();) {
            String a = e.nextElement();
            if (ks.isKeyEntry(a)) {
                alias = a;
            }
        }
        PrivateKey key = (PrivateKey) ks.getKey(alias, pass);
        Certificate[] chain = ks.getCertificateChain(alias);
        try (PDDocument doc = PDDocument.load(new File(args[0]))) {
            PDSignature signature = new PDSignature();
            signature.setFilter(PDSignature.FILTER_ADOBE_PPKLITE);
            signature.setSubFilter(COSName.getPDFName(args[5]));
            signature.setName(args[4]);
            signature.setReason("interop test");
            signature.setSignDate(Calendar.getInstance());
            if (args.length > 6) {
                certify(doc, signature, Integer.parseInt(args[6]));
            }
            SignatureOptions options = new SignatureOptions();
            options.setPreferredSignatureSize(16384);
            doc.addSignature(signature, new PdfBoxSign(key, chain), options);
            try (FileOutputStream out = new FileOutputStream(args[1])) {
                doc.saveIncremental(out);
            }
            options.close();
        }
    }
}
